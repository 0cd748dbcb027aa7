"""IVIG-CDS: a CDS Hooks service for the EFNS 2008 guideline on IVIG in neurological diseases."""
