from setuptools import find_packages, setup

DAGSTER = "1.13.27"
DAGSTER_LIBS = "0.29.27"

setup(
    name="clickstream_assets",
    version="0.1.0",
    description="Segment analytics.js clickstream events from S3 into per-customer warehouses, "
    "as Dagster assets.",
    packages=find_packages(exclude=["clickstream_assets_tests", "clickstream_assets_tests.*"]),
    package_data={"clickstream_assets": ["example_config/*.yaml", "example_config/*.json",
                                        "config_api/*.graphql"]},
    python_requires=">=3.10",
    install_requires=[
        f"dagster=={DAGSTER}",
        f"dagster-webserver=={DAGSTER}",
        f"dagster-aws=={DAGSTER_LIBS}",
        f"dagster-postgres=={DAGSTER_LIBS}",
        "boto3>=1.34",
        "redshift-connector>=2.1",
        "pandas>=2.1",
        "pyarrow>=15",
        "orjson>=3.9",
        "duckdb>=1.1",
        "PyYAML>=6",
        # customer config API client: GraphQL over HTTP, retries, shared rate limit,
        # shared circuit breaker, single-flight cache
        "graphql-core>=3.2",
        "requests>=2.31",
        "tenacity>=8.2",
        "pyrate-limiter>=3.7,<5",
        "filelock>=3.12",
        "pybreaker>=1.0",
        "redis>=5",
        # PostgreSQL backend of the shared config API rate limit (pyrate-limiter's bucket)
        "psycopg[binary]>=3.1",
        "psycopg-pool>=3.2",
        # ISA-L gzip inflate for event files, ~3x zlib's speed (docs/normalization.md)
        "isal>=1.6",
        # `clickstream load` progress bar on a terminal
        "tqdm>=4.66",
    ],
    extras_require={
        "test": [
            f"dagster-graphql=={DAGSTER}",
            "moto[server]>=5",
            "pytest>=8",
            "psycopg2-binary>=2.9",
        ],
    },
    entry_points={"console_scripts": ["clickstream=clickstream_assets.cli:main"]},
)
