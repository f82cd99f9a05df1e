"""Adapters: what talks to PostgreSQL, RabbitMQ, AWS and the key files."""
