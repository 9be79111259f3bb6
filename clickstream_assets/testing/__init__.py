"""What the tests and bench/ share: local services (moto S3, PostgreSQL), the Redshift emulator,
S3 seeding. Needs the `[test]` extras; production code never imports it."""
