"""Shared package of the body-worn-camera evidence backend.

Everything every service needs lives here once: settings pieces, CloudEvent models and topic
names, the Postgres / Kafka / S3 helpers, auth, logging, problem+json errors and the outbox.
A service composes these; it never copies them.
"""
