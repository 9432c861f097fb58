"""The admin center: a REST API and a web console over the same services as the CLI."""
