"""Report writers: text (rich), JSON, JSON Lines and SARIF 2.1.0."""
