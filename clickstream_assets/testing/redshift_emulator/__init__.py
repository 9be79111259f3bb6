"""A small Redshift emulator for tests: a loopback wire-protocol proxy in front of PostgreSQL.

`redshift-connector` speaks the PostgreSQL v3 protocol with Redshift's additions, and a plain
PostgreSQL refuses it. This proxy sits between them and emulates, at the protocol level:

- startup: with `password` set, asks for it and refuses a wrong one with Redshift's FATAL
  28000 (else, as by default, any login PostgreSQL's trust accepts); drops the Redshift-only
  startup parameters (client_protocol_version,
  driver_version, os_version, driver_discovery_version, plugin_name, ...); answers an SSL
  request with "no TLS" (so the client's default verify-full fails, as it should against a
  server without a certificate); reports `server_version` 8.0.2 as Redshift does.
- DDL: `DISTSTYLE x`, `DISTKEY (c)`, `[COMPOUND|INTERLEAVED] SORTKEY (c, ...)` and `ENCODE x`
  are accepted and removed (PostgreSQL has no such things), outside quoted text only.
- Quoted identifiers fold their ASCII letters to lower case, as on Redshift by default
  (enable_case_sensitive_identifier off): `"Col"` and `col` are one column.
- Identifiers up to 127 bytes, as on Redshift: PostgreSQL cuts names at 63 bytes, so a name of
  64-127 bytes (quoted, or unquoted and folded to lower case) goes to PostgreSQL as a hashed
  stand-in (`_rs127_<hash>`) and comes back under its full name in result rows, column
  names and error messages; a bound parameter equal to a mapped name (a catalog look-up
  such as `table_name = ?`) is mapped too. Over 127 bytes is an error.
- VARCHAR lengths in bytes wherever a value is stored: every `VARCHAR(n)` column that CREATE
  TABLE or ADD COLUMN declares gets a CHECK on `octet_length` (PostgreSQL counts
  characters), so INSERT, UPDATE, CREATE TABLE AS targets and COPY refuse a value over n
  bytes with Redshift's "value too long for type character varying(n)" (SQLSTATE 22001).
  A bare `VARCHAR` or `TEXT` column is `VARCHAR(256)`, as on Redshift.
- `ALTER TABLE ... ALTER COLUMN c [SET DATA] TYPE VARCHAR(n)` only: on a VARCHAR column,
  outside a transaction block, to a size its values fit in bytes (Redshift's rule); any other
  type change, or one inside a transaction, fails.
- Casting a boolean to a character type (`CAST(b AS VARCHAR)`, `b::text`) fails with
  Redshift's "cannot cast type boolean to character varying": the emulator points PostgreSQL's
  boolean-to-text casts of the database at a function that raises in emulator sessions (a
  startup parameter marks them; other sessions of the database keep PostgreSQL's cast).
- PostgreSQL-only grammar Redshift rejects fails here too: `ON CONFLICT`, `RETURNING`, several
  `ADD COLUMN`s in one `ALTER TABLE`, `VARCHAR(n)` over 65,535, `JSONB`, `SERIAL`
  columns, `UNLOGGED` tables.
- `COPY t (cols) FROM 's3://.../manifest' IAM_ROLE 'arn:aws:iam::...' MANIFEST GZIP CSV
  IGNOREHEADER 1 EMPTYASNULL TIMEFORMAT 'auto' COMPUPDATE OFF STATUPDATE OFF`: exactly these
  options (any other option, a missing one, or another value is an error, so the emulator
  cannot hide a typo). It reads the manifest and every entry from S3 (the moto server), gunzips
  them and streams each into PostgreSQL with `COPY ... FROM STDIN (FORMAT csv, HEADER true,
  FORCE_NULL (...))` on the client's own backend session, so temp tables and transactions
  behave as on Redshift. A failed COPY aborts the transaction as on Redshift. Redshift's
  limits that PostgreSQL lacks or differs on: an input row over 4 MB fails the COPY;
  timestamps outside PostgreSQL's range (year 0, 1e20 ms) fail as PostgreSQL fails them.
- VARCHAR lengths in bytes on COPY: a staged value longer in bytes than its column's
  VARCHAR(n) fails the COPY ("String length exceeds DDL length"), as on Redshift.
- faults for tests: drop the connection before a matching statement runs, or after it ran but
  before its reply reaches the client (a COMMIT whose outcome the client cannot know).

Not emulated: Redshift's SQL dialect beyond the above (queries run as PostgreSQL), TLS, IAM
authentication, serializable-isolation errors (PostgreSQL runs read committed), slices,
compression encodings (so ALTER COLUMN TYPE does not check them), CHAR(n) byte lengths and
casts to a shorter VARCHAR (cut in characters here, in bytes there), a boolean cast over an
empty table (Redshift refuses it when planning; here it fails per row), a long name's
mapping across emulator restarts (kept in memory) and in string literals, ORDER BY of long
names (by stand-in here), STL/SVV system tables, `pg_last_copy_count()`, COPY's error table
(stl_load_errors), UNLOAD.

One module per concern: `server` (the listener and the state tests steer), `session` (the
wire-protocol proxy of one connection), `protocol` (message framing), `rules` (what is
refused or rewritten before PostgreSQL sees it), `names` (127-byte identifiers and case
folding), `varchar_bytes` (VARCHAR lengths in bytes), `alter_column` (the ALTER COLUMN TYPE
rule), `copy_s3` (COPY from S3 manifests), `cast_trap` (the PostgreSQL-side boolean cast
trap), `faults` (dropped connections for tests), `sqltext` (quoted text, failing a statement).
"""

from clickstream_assets.testing.redshift_emulator.copy_s3 import parse_copy
from clickstream_assets.testing.redshift_emulator.rules import strip_redshift_ddl
from clickstream_assets.testing.redshift_emulator.server import RedshiftEmulator
from clickstream_assets.testing.redshift_emulator.sqltext import EmulatorError

__all__ = ["EmulatorError", "RedshiftEmulator", "parse_copy", "strip_redshift_ddl"]
