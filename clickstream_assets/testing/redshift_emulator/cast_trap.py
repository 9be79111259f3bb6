"""The PostgreSQL side of the emulator: Redshift has no boolean -> character cast, so each
database the emulator serves gets its boolean -> text casts pointed at a function that
raises in emulator sessions (marked by a startup parameter) and casts as PostgreSQL does in
every other session of that database."""

from __future__ import annotations

# emulator sessions carry this startup parameter; the boolean cast trap raises only in them
SESSION_GUC = "rs_emulator.redshift"
BOOL_CAST_TRAP = f"""
CREATE OR REPLACE FUNCTION public.rs_emulator_bool_to_text(b boolean) RETURNS text
LANGUAGE plpgsql STABLE AS $trap$
BEGIN
  IF current_setting('{SESSION_GUC}', true) = 'on' THEN
    RAISE EXCEPTION 'cannot cast type boolean to character varying' USING ERRCODE = '42846';
  END IF;
  RETURN CASE WHEN b THEN 'true' WHEN NOT b THEN 'false' END;
END $trap$;
UPDATE pg_cast SET castfunc = 'public.rs_emulator_bool_to_text(boolean)'::regprocedure
 WHERE castsource = 'boolean'::regtype AND casttarget IN
   ('text'::regtype, 'character varying'::regtype, 'character'::regtype);
"""


def install_bool_cast_trap(host: str, port: int, database: str, user: str) -> bool:
    """Set the trap up in `database` as the superuser `user`; False if the database does
    not exist (the session's own login then fails, as it should)."""
    import psycopg2  # noqa: PLC0415

    try:
        conn = psycopg2.connect(host=host, port=port, dbname=database, user=user)
    except psycopg2.OperationalError:
        return False
    try:
        conn.autocommit = True
        conn.cursor().execute(BOOL_CAST_TRAP)
        return True
    finally:
        conn.close()
