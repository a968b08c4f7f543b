"""Signal processing in chunks: streaming filters and resampling, exact whatever the chunking."""
