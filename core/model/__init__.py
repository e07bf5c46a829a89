"""The policy: loading, saving, sampling and scoring a VLM; the embedded tiny default and how it is built."""
