"""Platform sync: consent, anonymisation and safe delivery to outside platforms (SPEC §4)."""
