"""hpcai.storage: one fsspec-based storage API over POSIX, S3 and on-prem object stores."""

__all__: list[str] = []
