"""Pure domain code: parsing, validation, transformation and masking. No I/O here."""
