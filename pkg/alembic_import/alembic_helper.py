# The Python half of `sluice import alembic`. sluice embeds this file in its binary and runs it as
# `PYTHON -c <this file> ALEMBIC_INI` in the directory of ALEMBIC_INI, as `alembic` would run there.
#
# For every revision of the project it renders Alembic's own offline (--sql) SQL for that one
# step, upgrade and downgrade, through the project's env.py, as `alembic upgrade PARENT:REV --sql`
# would; only Alembic's bookkeeping is left out: the version-table statements, the
# BEGIN/COMMIT around the run and the "-- Running upgrade" comments (sluice writes its own).
# It also notes what offline mode cannot render faithfully: a step that fails, that asks for the
# database connection (op.get_bind()), or that branches on context.is_offline_mode(); and what
# sluice says in other words: an autocommit_block() (transactional: false) and a downgrade() that
# raises NotImplementedError (no downgrade).
#
# Output, on stdout: a header line, then fields `NAME LENGTH\nVALUE\n` (LENGTH in bytes of the
# UTF-8 VALUE), each revision starting with a `revision` field, and a final `end` field. Errors that
# stop the whole import go to stderr with exit status 3 (Alembic cannot be imported) or 4 (the
# project cannot be read).
import contextlib
import io
import os
import sys
import traceback

# `python -c` puts the working directory first on sys.path; the `alembic` command does not (the
# project adds it with `prepend_sys_path = .`), so imports resolve as they do for `alembic`.
if sys.path and sys.path[0] == "":
    sys.path.pop(0)

PROTOCOL = "sluice-alembic-import 1"

try:
    import alembic
    from alembic.config import Config
    from alembic.ddl.impl import DefaultImpl
    from alembic.operations import Operations
    from alembic.runtime import migration
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory
except Exception as error:  # ImportError, or a broken installation
    sys.stderr.write("cannot import alembic in %s: %s: %s\n" % (
        sys.executable, type(error).__name__, error))
    sys.exit(3)


class Render:
    """What one step's rendering saw."""

    def __init__(self):
        self.buffer = io.StringIO()
        self.in_step = False
        self.asked_for_bind = False
        self.checked_offline_mode = False
        self.autocommit_block = False
        self.dialect = None
        self.version_table = None
        self.version_table_schema = None
        self.step = None  # the RevisionStep run_migrations runs
        self.irreversible = False  # downgrade() raised NotImplementedError


current = None  # the Render under way


def note_bind():
    if current is not None and current.in_step:
        current.asked_for_bind = True


original_get_bind = Operations.get_bind


def get_bind(self):
    note_bind()
    return original_get_bind(self)


Operations.get_bind = get_bind

original_bind = migration.MigrationContext.bind


def context_bind(self):
    note_bind()
    return original_bind.fget(self)


migration.MigrationContext.bind = property(context_bind)

original_is_offline_mode = EnvironmentContext.is_offline_mode


def is_offline_mode(self):
    if current is not None and current.in_step:
        current.checked_offline_mode = True
    return original_is_offline_mode(self)


EnvironmentContext.is_offline_mode = is_offline_mode

original_configure = EnvironmentContext.configure


def configure(self, *args, **kwargs):
    # Whatever env.py passes, the SQL comes to this step's buffer.
    kwargs["output_buffer"] = current.buffer
    current.version_table = kwargs.get("version_table")
    current.version_table_schema = kwargs.get("version_table_schema")
    return original_configure(self, *args, **kwargs)


EnvironmentContext.configure = configure

original_autocommit_block = migration.MigrationContext.autocommit_block


@contextlib.contextmanager
def autocommit_block(self):
    if current is not None and current.in_step:
        current.autocommit_block = True
    with original_autocommit_block(self):
        yield


migration.MigrationContext.autocommit_block = autocommit_block


def no_transaction_statement(self):
    """BEGIN and COMMIT are sluice's to write: each revision runs in its own transaction."""


# env.py's `with context.begin_transaction()` emits BEGIN before run_migrations starts, and an
# autocommit block emits COMMIT ... BEGIN around its statements.
DefaultImpl.emit_begin = no_transaction_statement
DefaultImpl.emit_commit = no_transaction_statement


def run_one_step(self, **kw):
    """MigrationContext.run_migrations for one step, without the version table's statements."""
    current.dialect = self.dialect.name
    self.impl.start_migrations()
    current.in_step = True
    try:
        current.step.migration_fn(**kw)
    finally:
        current.in_step = False


migration.MigrationContext.run_migrations = run_one_step


def render(config, script, revision, upgrade):
    """Returns the Render of `revision`'s upgrade (or downgrade) step and the error it raised."""
    global current
    current = Render()
    current.step = migration.RevisionStep(script.revision_map, revision, upgrade)
    parents = tuple(revision._versioned_down_revisions)
    if upgrade:
        start, destination = parents or None, revision.revision
    else:
        start, destination = revision.revision, parents or "base"
    error = None
    try:
        with EnvironmentContext(
            config,
            script,
            fn=lambda heads, context: [],
            as_sql=True,
            starting_rev=start,
            destination_rev=destination,
        ):
            script.run_env()
    except SystemExit as exit:
        error = "env.py exited (status %s)" % (exit.code,)
    except NotImplementedError as exception:
        # `raise NotImplementedError` in downgrade() itself is Alembic's idiom for a revision that
        # cannot be downgraded; sluice's is a manifest without `downgrade`. Raised deeper down, it
        # is a failure like any other.
        frames = traceback.extract_tb(exception.__traceback__)
        if (not upgrade and frames and
                os.path.abspath(frames[-1].filename) == os.path.abspath(revision.path)):
            current.irreversible = True
        else:
            error = describe(exception, revision.path)
    except Exception as exception:
        error = describe(exception, revision.path)
    return current, error


def describe(exception, path):
    """`Type: message`, with the line of the revision script (else the last frame) that raised."""
    frames = traceback.extract_tb(exception.__traceback__)
    where = None
    for frame in frames:
        if os.path.abspath(frame.filename) == os.path.abspath(path):
            where = frame
    if where is None and frames and not frames[-1].filename.startswith("<"):
        where = frames[-1]  # not Python's own machinery (<frozen importlib._bootstrap>)
    message = str(exception).strip()
    text = type(exception).__name__
    if message:
        text += ": " + message.splitlines()[0]
    if where is not None:
        text += " (%s line %d)" % (os.path.relpath(where.filename), where.lineno)
    return text


def problems_of(step, error):
    problems = []
    if error is not None:
        problems.append("offline rendering failed: " + error)
    if step.asked_for_bind:
        problems.append("it uses the database connection (op.get_bind()), which offline mode only "
                        "mocks: what it reads or decides online is not in the SQL")
    if step.checked_offline_mode:
        problems.append("it branches on context.is_offline_mode(), so its offline SQL is not what "
                        "it runs online")
    return problems


def field(out, name, value):
    data = str(value).encode("utf-8", "surrogateescape")
    out.write(b"%s %d\n" % (name.encode("ascii"), len(data)))
    out.write(data)
    out.write(b"\n")


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: python3 -c HELPER ALEMBIC_INI\n")
        return 4
    ini = sys.argv[1]
    try:
        config = Config(ini)
        script = ScriptDirectory.from_config(config)
        revisions = list(script.walk_revisions("base", "heads"))
    except Exception as error:
        sys.stderr.write("cannot read the Alembic project of %s: %s\n" % (
            ini, describe(error, ini)))
        return 4

    # Whatever env.py or a revision prints goes to stderr: stdout carries the answer alone.
    answer = os.fdopen(os.dup(1), "wb")
    sys.stdout.flush()
    os.dup2(2, 1)

    out = io.BytesIO()
    out.write(PROTOCOL.encode("ascii") + b"\n")
    field(out, "alembic_version", alembic.__version__)
    for revision in sorted(revisions, key=lambda r: r.revision):
        field(out, "revision", revision.revision)
        for parent in revision._versioned_down_revisions:
            field(out, "down_revision", parent)
        for label in sorted(revision._orig_branch_labels):
            field(out, "branch_label", label)
        # depends_on may name branch labels or id prefixes; Alembic resolves them to ids.
        for dependency in sorted(revision._resolved_dependencies):
            field(out, "depends_on", dependency)
        field(out, "description", revision.doc)
        field(out, "script", os.path.relpath(revision.path))
        for upgrade, direction in ((True, "upgrade"), (False, "downgrade")):
            step, error = render(config, script, revision, upgrade)
            if step.dialect is None:
                # The step never started: env.py itself failed, or does not run offline.
                sys.stderr.write(
                    "%s: env.py did not run %s's %s in offline (--sql) mode: %s\n" % (
                        ini, revision.revision, direction,
                        error or "it never called context.run_migrations()"))
                return 4
            if step.dialect is not None and step.dialect != "postgresql":
                sys.stderr.write("the project's env.py renders for %s; sluice runs PostgreSQL "
                                 "only\n" % step.dialect)
                return 4
            if step.irreversible:
                field(out, "downgrade_irreversible", "")
                continue
            field(out, direction + "_sql", step.buffer.getvalue())
            for problem in problems_of(step, error):
                field(out, direction + "_problem", problem)
            if step.autocommit_block:
                field(out, "autocommit_block", direction)
            if step.version_table:
                field(out, "version_table", step.version_table)
            if step.version_table_schema:
                field(out, "version_table_schema", step.version_table_schema)
    field(out, "end", "")
    # Only now: a failure above must not leave half an answer on stdout.
    answer.write(out.getvalue())
    answer.close()
    return 0


sys.exit(main())
