"""The customer config API: contract, reference server, and a client that cannot DDoS it.

Modules, one concern each: `contract` (schema + our queries), `server` (reference server
with fault injection), `limiter` (shared request budget), `breaker` (shared circuit
breaker), `cache` (shared file cache), `client` (GraphQL over HTTP through all of them),
`source` (a CustomerSource), `selection` (file or API, by settings), `resource` and
`sensor` (Dagster). Kept import-light: settings import `rates` from here.
"""
