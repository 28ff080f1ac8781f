"""What several packages share: settings, errors, console output, model loading, prompt style, the adapter manifest
and its loading, S3 transfer, metrics and file types. It imports no other mmrag package."""
