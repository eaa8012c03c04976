"""Alert notifications: owners and the security team hear what was found and done.

``message`` builds what people read (no secret ever: redacted forms and
locations only), ``channels`` delivers it (Standard Webhooks, Slack, SMTP),
``dedup`` remembers what was already said, ``dispatch`` routes, batches,
retries and audits.
"""
