// The lint run: the scratch database's life, the revisions applied and observed statement by
// statement, and the rules judged on what was observed (rules below, in Judge).
#include "pkg/lint/lint.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "pkg/base/log.h"
#include "pkg/base/status_macros.h"
#include "pkg/failure/failure.h"
#include "pkg/failure/migration_failure.h"
#include "pkg/lint/parse.h"
#include "pkg/sql/sql_text.h"

namespace sluice::lint {
namespace {

using manifest::Migration;
using store::CatalogState;
using store::ColumnState;
using store::RelationState;

constexpr char kApplicationName[] = "sluice:lint";

// Lock modes that block writes to a table (SHARE and stronger).
bool BlocksWrites(absl::string_view mode) {
  return mode == "ShareLock" || mode == "ShareRowExclusiveLock" || mode == "ExclusiveLock" ||
         mode == "AccessExclusiveLock";
}

int LockStrength(absl::string_view mode) {
  static constexpr absl::string_view kModes[] = {
      "AccessShareLock", "RowShareLock",          "RowExclusiveLock", "ShareUpdateExclusiveLock",
      "ShareLock",       "ShareRowExclusiveLock", "ExclusiveLock",    "AccessExclusiveLock"};
  for (int i = 0; i < 8; ++i) {
    if (kModes[i] == mode) return i;
  }
  return -1;
}

bool Contains(const std::vector<store::RelationLock>& locks, const store::RelationLock& lock) {
  return std::any_of(locks.begin(), locks.end(), [&](const store::RelationLock& l) {
    return l.relation == lock.relation && l.mode == lock.mode;
  });
}

std::string RandomSuffix() {
  std::random_device device;
  std::uniform_int_distribution<uint32_t> digit(0, 35);
  std::string suffix;
  for (int i = 0; i < 12; ++i) {
    const uint32_t d = digit(device);
    suffix.push_back(static_cast<char>(d < 10 ? '0' + d : 'a' + d - 10));
  }
  return suffix;
}

// Returns the width of a bounded type ("character varying(50)" -> 50, "numeric(10,2)" -> 10),
// or nullopt for an unbounded one.
std::optional<int> TypeWidth(absl::string_view type) {
  const size_t open = type.find('(');
  if (open == absl::string_view::npos) return std::nullopt;
  absl::string_view digits = type.substr(open + 1);
  digits = digits.substr(0, digits.find_first_of(",)"));
  int width = 0;
  if (!absl::SimpleAtoi(digits, &width)) return std::nullopt;
  return width;
}

absl::string_view TypeBase(absl::string_view type) { return type.substr(0, type.find('(')); }

// Returns whether changing a column from `from` to `to` can lose data: a shorter bounded type, a
// smaller integer or float, or a bounded type from an unbounded one.
bool Narrows(absl::string_view from, absl::string_view to) {
  static constexpr absl::string_view kIntegers[] = {"smallint", "integer", "bigint"};
  auto rank = [](absl::string_view type) {
    for (int i = 0; i < 3; ++i) {
      if (kIntegers[i] == type) return i;
    }
    return -1;
  };
  if (rank(from) >= 0 && rank(to) >= 0) return rank(to) < rank(from);
  if (from == "double precision" && to == "real") return true;
  if ((rank(from) >= 0 || from == "numeric" || TypeBase(from) == "numeric") && rank(to) >= 0 &&
      TypeBase(from) != TypeBase(to)) {
    return rank(from) < 0;  // numeric to an integer drops the fraction
  }
  const std::optional<int> from_width = TypeWidth(from);
  const std::optional<int> to_width = TypeWidth(to);
  const bool textual_from = TypeBase(from) == "text" || TypeBase(from) == "character varying" ||
                            TypeBase(from) == "character";
  if (to_width.has_value()) {
    if (from_width.has_value()) {
      return TypeBase(from) == TypeBase(to) ? *to_width < *from_width
                                            : textual_from && *to_width < *from_width;
    }
    return textual_from || TypeBase(from) == TypeBase(to);
  }
  return false;
}

// What one statement did to one relation that existed before the revision.
struct TableEffect {
  const RelationState* table = nullptr;  // before the statement
  std::string strongest_lock;            // the strongest mode held on it while the statement ran
  // The same, of the locks on the table itself (not its indexes): what a scan of it ran under. A
  // REINDEX CONCURRENTLY scans under SHARE UPDATE EXCLUSIVE and only later, briefly, takes ACCESS
  // EXCLUSIVE on the old index, which the observer sees or not depending on timing.
  std::string strongest_table_lock;
  bool took_access_exclusive = false;  // the statement itself took ACCESS EXCLUSIVE on it
  std::vector<std::string> rewritten;  // the table and/or indexes whose relfilenode changed
  int64_t scans = 0;                   // seq scans of the table plus scans of its indexes
  std::vector<std::string> new_indexes;
  bool dropped = false;
  std::optional<std::string> renamed_to;
  std::vector<std::string> dropped_columns;
  std::vector<std::string> renamed_columns;   // "old -> new"
  std::vector<std::string> narrowed_columns;  // "name: old -> new"
  std::vector<std::string> not_null_columns;  // added NOT NULL without a default
};

// A statement of a revision with where it is and what the parser said.
struct StatementRun {
  const Migration* migration;
  const sql::Statement* statement;
  internal::StatementFacts facts;
  int line = 0;
};

std::map<uint32_t, const RelationState*> ByOid(const CatalogState& state) {
  std::map<uint32_t, const RelationState*> by_oid;
  for (const RelationState& relation : state.relations) by_oid[relation.oid] = &relation;
  return by_oid;
}

std::map<std::pair<uint32_t, int>, const ColumnState*> ColumnsByKey(const CatalogState& state) {
  std::map<std::pair<uint32_t, int>, const ColumnState*> by_key;
  for (const ColumnState& column : state.columns) by_key[{column.table, column.number}] = &column;
  return by_key;
}

bool IsTable(char kind) { return kind == 'r' || kind == 'p' || kind == 'm'; }

// Compares the catalog before and after one statement for the tables in `existing` (those that
// existed when the revision began), with the locks held while it ran (`held`: in a transaction
// also those of its earlier statements, which it held too) and those it took itself (`taken`).
std::vector<TableEffect> Compare(const std::set<uint32_t>& existing, const CatalogState& before,
                                 const CatalogState& after,
                                 const std::vector<store::RelationLock>& held,
                                 const std::vector<store::RelationLock>& taken) {
  const auto after_by_oid = ByOid(after);
  const auto before_by_oid = ByOid(before);
  const auto columns_before = ColumnsByKey(before);
  const auto columns_after = ColumnsByKey(after);
  std::map<uint32_t, TableEffect> effects;
  for (const RelationState& relation : before.relations) {
    if (!IsTable(relation.kind) || existing.count(relation.oid) == 0) continue;
    effects[relation.oid].table = &relation;
  }
  // Returns the effect on the table of the relation `oid` (an index counts as its table).
  auto effect_of = [&](uint32_t oid) -> TableEffect* {
    uint32_t table = oid;
    if (auto it = before_by_oid.find(oid); it != before_by_oid.end()) table = it->second->table;
    auto effect = effects.find(table);
    return effect == effects.end() ? nullptr : &effect->second;
  };
  for (const store::RelationLock& lock : held) {
    TableEffect* effect = effect_of(lock.relation);
    if (effect == nullptr) continue;
    if (LockStrength(lock.mode) > LockStrength(effect->strongest_lock)) {
      effect->strongest_lock = lock.mode;
    }
    if (lock.relation == effect->table->oid &&
        LockStrength(lock.mode) > LockStrength(effect->strongest_table_lock)) {
      effect->strongest_table_lock = lock.mode;
    }
  }
  for (const store::RelationLock& lock : taken) {
    TableEffect* effect = effect_of(lock.relation);
    if (effect != nullptr && lock.mode == "AccessExclusiveLock" &&
        lock.relation == effect->table->oid) {
      effect->took_access_exclusive = true;
    }
  }
  for (const RelationState& relation : before.relations) {
    auto effect = effects.find(relation.table);
    if (effect == effects.end()) continue;
    auto now = after_by_oid.find(relation.oid);
    if (now == after_by_oid.end()) {
      if (relation.oid == relation.table) effect->second.dropped = true;
      continue;
    }
    if (relation.filenode != 0 && now->second->filenode != relation.filenode) {
      effect->second.rewritten.push_back(relation.name);
    }
    effect->second.scans += std::max<int64_t>(0, now->second->scans - relation.scans);
    if (relation.oid == relation.table && now->second->name != relation.name) {
      effect->second.renamed_to = now->second->name;
    }
  }
  for (const RelationState& relation : after.relations) {
    if (before_by_oid.count(relation.oid) > 0 || relation.oid == relation.table) continue;
    auto effect = effects.find(relation.table);
    if (effect != effects.end()) effect->second.new_indexes.push_back(relation.name);
  }
  for (const auto& [key, column] : columns_before) {
    auto effect = effects.find(key.first);
    if (effect == effects.end() || effect->second.dropped) continue;
    auto now = columns_after.find(key);
    if (now == columns_after.end()) {
      effect->second.dropped_columns.push_back(column->name);
      continue;
    }
    if (now->second->name != column->name) {
      effect->second.renamed_columns.push_back(
          absl::StrCat(column->name, " -> ", now->second->name));
    }
    if (now->second->type != column->type && Narrows(column->type, now->second->type)) {
      effect->second.narrowed_columns.push_back(
          absl::StrCat(now->second->name, ": ", column->type, " -> ", now->second->type));
    }
  }
  for (const auto& [key, column] : columns_after) {
    auto effect = effects.find(key.first);
    if (effect == effects.end() || columns_before.count(key) > 0) continue;
    if (column->not_null && !column->has_default && !column->generated) {
      effect->second.not_null_columns.push_back(column->name);
    }
  }
  std::vector<TableEffect> out;
  for (auto& [oid, effect] : effects) out.push_back(std::move(effect));
  return out;
}

std::string LockedBy(const TableEffect& effect) {
  return effect.strongest_lock.empty() ? std::string("no lock seen")
                                       : absl::StrCat(effect.strongest_lock, " held");
}

std::string RewriteFix(const internal::StatementFacts& facts) {
  if (absl::StrContains(facts.kind, "ADD COLUMN")) {
    return "add the column with a constant default or none (PostgreSQL 11+ stores a constant "
           "default without a rewrite), then fill it in batches";
  }
  if (absl::StrContains(facts.kind, "TYPE")) {
    return "add a new column of the new type, fill it in batches, switch the application to it, "
           "then drop the old one";
  }
  return "do it without a rewrite (a new table or column filled in batches), or at a quiet time "
         "with lint_allow and a reason";
}

std::string ScanFix(const internal::StatementFacts& facts) {
  if (absl::StrContains(facts.kind, "SET NOT NULL")) {
    return "add CHECK (column IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT it in a later revision "
           "(SHARE UPDATE EXCLUSIVE: writes go on), then SET NOT NULL, which then skips the scan";
  }
  return "add the constraint NOT VALID, then VALIDATE CONSTRAINT in a later revision (it takes "
         "SHARE UPDATE EXCLUSIVE, so writes go on while it scans)";
}

// Turns what one statement did into findings.
void Judge(const StatementRun& run, const std::vector<TableEffect>& effects,
           std::vector<Finding>* findings) {
  auto add = [&](absl::string_view rule, std::string message, std::string observed) {
    Finding finding;
    finding.rule = std::string(rule);
    finding.severity = FindRule(rule)->severity;
    finding.revision = run.migration->revision;
    finding.file = run.migration->location.file;
    finding.line = run.line;
    finding.statement = run.facts.kind;
    finding.message = std::move(message);
    finding.observed = std::move(observed);
    findings->push_back(std::move(finding));
  };
  const std::string& kind = run.facts.kind;
  for (const TableEffect& effect : effects) {
    const std::string& table = effect.table->name;
    bool reported = false;
    if (effect.dropped) {
      add("data-loss",
          absl::StrCat(kind, " drops table ", table,
                       " and its data; stop using it in one release, drop it in a later one (and "
                       "keep a backup), or allow it with lint_allow and a reason"),
          absl::StrCat(table, " is gone from pg_class"));
      continue;
    }
    if (run.facts.truncate && !effect.rewritten.empty()) {
      add("data-loss",
          absl::StrCat("TRUNCATE empties ", table,
                       "; delete what must go in batches, or allow it with lint_allow and a "
                       "reason"),
          absl::StrCat(LockedBy(effect), " on ", table));
      continue;
    }
    for (const std::string& column : effect.dropped_columns) {
      add("data-loss",
          absl::StrCat(kind, " drops column ", table, ".", column,
                       " and its data; stop reading and writing it in one release, drop it in a "
                       "later one"),
          absl::StrCat("column ", column, " is gone from pg_attribute"));
      reported = true;
    }
    for (const std::string& column : effect.narrowed_columns) {
      add("data-loss",
          absl::StrCat(kind, " narrows ", table, ".", column,
                       ": values that do not fit fail or are cut; check the data fits, or keep "
                       "the wider type"),
          absl::StrCat("pg_attribute type of ", column));
      reported = true;
    }
    if (!effect.rewritten.empty()) {
      add("table-rewrite",
          absl::StrCat(kind, " rewrites ", table,
                       " while no one can read or write it (for as long as copying the table "
                       "takes); ",
                       RewriteFix(run.facts)),
          absl::StrCat(LockedBy(effect), " on ", table,
                       "; relfilenode changed: ", absl::StrJoin(effect.rewritten, ", ")));
      reported = true;
    }
    if (!effect.new_indexes.empty() && !run.facts.concurrently) {
      add("index-not-concurrent",
          absl::StrCat(kind, " builds ", absl::StrJoin(effect.new_indexes, ", "), " on ", table,
                       " while writes to it wait; use CREATE INDEX CONCURRENTLY in a "
                       "transactional: false revision (for a constraint: CREATE UNIQUE INDEX "
                       "CONCURRENTLY, then ADD CONSTRAINT ... USING INDEX)"),
          absl::StrCat(LockedBy(effect), " on ", table, "; new index ",
                       absl::StrJoin(effect.new_indexes, ", ")));
      reported = true;
    } else if (effect.rewritten.empty() && effect.not_null_columns.empty() && effect.scans > 0 &&
               BlocksWrites(effect.strongest_table_lock)) {
      // (A new NOT NULL column is checked by a scan too: add-not-null-column below says more.)
      add("validation-scan",
          absl::StrCat(kind, " scans all of ", table, " while writes to it wait; ",
                       ScanFix(run.facts)),
          absl::StrCat(effect.scans, effect.scans == 1 ? " scan" : " scans", " of ", table,
                       " (pg_stat_xact_user_tables / index scan counts) under ",
                       effect.strongest_table_lock));
      reported = true;
    }
    for (const std::string& column : effect.not_null_columns) {
      add("add-not-null-column",
          absl::StrCat(kind, " adds ", table, ".", column,
                       " NOT NULL without a default: it fails on a table with rows; add it with a "
                       "DEFAULT, or nullable, fill it, and then set NOT NULL"),
          absl::StrCat("new column ", column, ": attnotnull, no default"));
      reported = true;
    }
    if (effect.renamed_to.has_value()) {
      add("rename",
          absl::StrCat(kind, " renames ", table, " to ", *effect.renamed_to,
                       "; the running application still uses the old name: create the new name "
                       "(e.g. a view), move the application, then drop the old one"),
          absl::StrCat("pg_class.relname ", table, " -> ", *effect.renamed_to));
      reported = true;
    }
    for (const std::string& column : effect.renamed_columns) {
      add("rename",
          absl::StrCat(kind, " renames column ", table, ".", column,
                       "; the running application still uses the old name: add the new column, "
                       "write both, move readers, then drop the old one"),
          absl::StrCat("pg_attribute.attname ", column));
      reported = true;
    }
    if (!reported && effect.took_access_exclusive) {
      add("access-exclusive",
          absl::StrCat(kind, " takes ACCESS EXCLUSIVE on ", table,
                       " briefly (catalog only: no rewrite, no scan); sluice applies it under "
                       "lock_timeout (--ddl-lock-timeout), so it gives up instead of queueing"),
          absl::StrCat("AccessExclusiveLock on ", table));
    }
  }
}

// Takes up `stop` (the CLI's SIGINT and SIGTERM, cli::RouteStopSignals) while a lint runs: a stop
// drops the scratch database from the thread that asked (WITH (FORCE) ends the lint's sessions,
// so the main thread's statement fails and it sees stopped()).
absl::Status InterruptedError(absl::string_view database) {
  return failure::WithFailureKind(
      absl::CancelledError(absl::StrCat("interrupted (SIGTERM or SIGINT); the scratch database ",
                                        database, " was dropped")),
      failure::FailureKind::kInterrupted);
}

class StopGuard {
 public:
  StopGuard(std::shared_ptr<base::StopRequest> stop, const DevConnector& connect,
            std::string database)
      : stop_(std::move(stop)), connect_(connect), database_(std::move(database)) {
    if (stop_ == nullptr) return;
    stop_->TakeUp();
    stop_->SetOnStop([this] { DropNow(); });
  }
  StopGuard(const StopGuard&) = delete;
  StopGuard& operator=(const StopGuard&) = delete;
  ~StopGuard() {
    if (stop_ != nullptr) stop_->GiveUp();  // waits for a DropNow under way
  }
  bool stopped() const { return stop_ != nullptr && stop_->stopped(); }

 private:
  void DropNow() {
    log::Warning("interrupted: dropping the scratch database", {{"database", database_}});
    absl::StatusOr<std::unique_ptr<store::Store>> admin = connect_("", kApplicationName);
    if (admin.ok()) {
      absl::Status dropped = (*admin)->Execute(absl::StrCat(
          "DROP DATABASE IF EXISTS ", sql::QuoteIdentifier(database_), " WITH (FORCE)"));
      if (!dropped.ok()) log::Error(dropped.message());
    } else {
      log::Error(admin.status().message());
    }
  }

  const std::shared_ptr<base::StopRequest> stop_;
  const DevConnector& connect_;
  const std::string database_;
};

class LintRun {
 public:
  LintRun(const LintOptions& options, const DevConnector& connect, std::string database,
          const StopGuard& guard)
      : options_(options), connect_(connect), database_(std::move(database)), guard_(guard) {}

  absl::StatusOr<LintReport> Run() {
    SLUICE_ASSIGN_OR_RETURN(work_, connect_(database_, kApplicationName));
    // Asked once, now: BackendPid() may need a round trip, which it cannot make while the
    // observer thread watches a statement of this connection run.
    work_pid_ = work_->BackendPid();
    SLUICE_ASSIGN_OR_RETURN(observer_, connect_(database_, kApplicationName));
    if (work_->inspector() == nullptr || observer_->inspector() == nullptr) {
      return absl::FailedPreconditionError("the dev server's store cannot inspect its catalog");
    }
    for (const Migration* m : options_.before) SLUICE_RETURN_IF_ERROR(ApplyBefore(*m));
    for (const Migration* m : options_.range) SLUICE_RETURN_IF_ERROR(Observe(*m));
    report_.scratch_database = database_;
    return std::move(report_);
  }

  // Closes the connections to the scratch database, so that it can be dropped.
  void Close() {
    work_.reset();
    observer_.reset();
  }

 private:
  absl::Status Interrupted(absl::Status cause) const {
    if (!guard_.stopped()) return cause;
    return InterruptedError(database_);
  }

  absl::Status ApplyBefore(const Migration& m) {
    absl::Status status;
    if (m.transactional) {
      status = work_->Begin();
      if (status.ok() && !absl::StripAsciiWhitespace(m.upgrade_sql).empty()) {
        status = work_->Execute(m.upgrade_sql);
      }
      status = status.ok() ? work_->Commit() : status;
      if (!status.ok()) (void)work_->Rollback();
    } else {
      absl::StatusOr<std::vector<sql::Statement>> statements = sql::SplitStatements(m.upgrade_sql);
      status = statements.status();
      for (size_t i = 0; status.ok() && i < statements->size(); ++i) {
        status = work_->Execute((*statements)[i].text);
      }
    }
    if (status.ok()) return status;
    return Interrupted(absl::Status(
        status.code(),
        absl::StrCat("revision ", m.revision, " (", m.location.file, ":", m.location.line,
                     "), below the range, fails on the dev server: ", status.message())));
  }

  int LineOf(const Migration& m, const sql::Statement& statement) const {
    return m.upgrade_first_line > 0 ? m.upgrade_first_line + statement.first_line - 1
                                    : m.location.line;
  }

  void AddFailure(const StatementRun& run, const absl::Status& status,
                  std::vector<Finding>* findings) {
    std::optional<failure::MigrationFailure> server = failure::MigrationFailureOf(status);
    Finding finding;
    finding.revision = run.migration->revision;
    finding.file = run.migration->location.file;
    finding.line = run.line;
    finding.statement = run.facts.kind;
    finding.observed = server.has_value() ? absl::StrCat("PostgreSQL: ", server->message,
                                                         " (SQLSTATE ", server->sqlstate, ")")
                                          : std::string(status.message());
    const bool refused_in_block = server.has_value() && server->sqlstate == "25001";
    if (refused_in_block && run.migration->transactional && run.facts.concurrently) {
      finding.rule = "concurrently-in-transaction";
      finding.message = absl::StrCat(
          run.facts.kind,
          " cannot run inside the revision's transaction; put it in a revision of its own with "
          "`transactional: false`");
    } else {
      finding.rule = "revision-failed";
      finding.message = absl::StrCat(
          run.facts.kind, " fails on the dev server, so the revision would fail in production; ",
          refused_in_block ? "set `transactional: false` for statements that cannot run in a "
                             "transaction"
                           : "fix the SQL");
    }
    finding.severity = FindRule(finding.rule)->severity;
    findings->push_back(std::move(finding));
  }

  // Runs one revision as upgrade would and judges each statement.
  absl::Status Observe(const Migration& m) {
    ++report_.revisions_linted;
    std::vector<Finding> findings;
    absl::StatusOr<std::vector<sql::Statement>> statements = sql::SplitStatements(m.upgrade_sql);
    if (!statements.ok()) {
      Finding finding;
      finding.rule = "revision-failed";
      finding.severity = Severity::kError;
      finding.revision = m.revision;
      finding.file = m.location.file;
      finding.line = m.location.line;
      finding.statement = "upgrade";
      finding.message =
          absl::StrCat("the SQL cannot be split into statements: ", statements.status().message());
      report_.findings.push_back(std::move(finding));
      Count(m, report_.findings.size() - 1);
      return absl::OkStatus();
    }
    // Read outside any transaction: no locks yet. Each statement's "after" is the next one's
    // "before" (nothing runs in between), so a statement costs one catalog read.
    CatalogState current;
    if (last_.has_value()) {
      // The previous revision's last read: only its COMMIT came since, which released its locks.
      current = *std::move(last_);
      current.locks.clear();
    } else {
      SLUICE_ASSIGN_OR_RETURN(current, Catalog(0));
    }
    last_.reset();
    std::set<uint32_t> existing;
    for (const RelationState& relation : current.relations) existing.insert(relation.oid);

    if (m.transactional) {
      SLUICE_RETURN_IF_ERROR(Interrupted(work_->BeginWithLockTimeout(options_.ddl_lock_timeout)));
    } else {
      SLUICE_RETURN_IF_ERROR(Interrupted(work_->SetLockTimeout(options_.ddl_lock_timeout)));
    }
    const int pid = m.transactional ? work_pid_ : 0;
    bool failed = false;
    for (const sql::Statement& statement : *statements) {
      StatementRun run{&m, &statement, {}, LineOf(m, statement)};
      absl::StatusOr<internal::StatementFacts> facts = internal::ParseStatement(statement.text);
      run.facts = facts.ok() ? *facts : internal::StatementFacts{"statement"};
      ++report_.statements;
      std::vector<store::RelationLock> held;
      std::vector<store::RelationLock> taken;
      absl::Status status;
      if (m.transactional) {
        status = work_->Execute(statement.text);
      } else {
        if (!run.facts.outside_transaction_only) {
          SLUICE_ASSIGN_OR_RETURN(taken, Rehearse(statement.text));
          // The rehearsal moved the scan counters.
          SLUICE_ASSIGN_OR_RETURN(current, Catalog(0));
        }
        status = ExecuteWatched(statement.text, &taken);
        held = taken;
      }
      if (guard_.stopped()) return Interrupted(status);
      if (!status.ok()) {
        AddFailure(run, status, &findings);
        failed = true;
        break;
      }
      SLUICE_ASSIGN_OR_RETURN(CatalogState after, Catalog(pid));
      if (m.transactional) {
        held = after.locks;
        for (const store::RelationLock& lock : held) {
          if (!Contains(current.locks, lock)) taken.push_back(lock);
        }
      }
      Judge(run, Compare(existing, current, after, held, taken), &findings);
      current = std::move(after);
    }
    if (m.transactional) {
      absl::Status ended = failed ? work_->Rollback() : work_->Commit();
      if (!ended.ok() && !failed) {
        StatementRun run{&m, nullptr, internal::StatementFacts{"COMMIT"}, m.location.line};
        AddFailure(run, ended, &findings);
        failed = true;  // rolled back: the catalog read last is not the database's
      } else if (!ended.ok()) {
        return Interrupted(ended);
      }
    } else {
      SLUICE_RETURN_IF_ERROR(Interrupted(work_->Execute("RESET lock_timeout")));
    }
    if (!failed) last_ = std::move(current);
    for (Finding& finding : findings) {
      report_.findings.push_back(std::move(finding));
      Count(m, report_.findings.size() - 1);
    }
    return absl::OkStatus();
  }

  // Marks finding `index` allowed when the revision's manifest allows its rule, and counts it.
  void Count(const Migration& m, size_t index) {
    Finding& finding = report_.findings[index];
    const Rule* rule = FindRule(finding.rule);
    for (const manifest::LintAllowance& allowance : m.lint_allow) {
      if (rule != nullptr && rule->allowable && allowance.rule == finding.rule) {
        finding.allowed = true;
        finding.allow_reason = allowance.reason;
      }
    }
    if (finding.allowed) return;
    if (finding.severity == Severity::kError) ++report_.errors;
    if (finding.severity == Severity::kWarning) ++report_.warnings;
  }

  // Reads the catalog on the work connection, with the locks of backend `locks_of` (0: none).
  absl::StatusOr<CatalogState> Catalog(int locks_of) {
    absl::StatusOr<CatalogState> state = work_->inspector()->ReadCatalog(locks_of);
    if (!state.ok()) return Interrupted(state.status());
    return state;
  }

  absl::StatusOr<std::vector<store::RelationLock>> OwnLocks() {
    absl::StatusOr<std::vector<store::RelationLock>> locks =
        work_->inspector()->RelationLocks(work_pid_);
    if (!locks.ok()) return Interrupted(locks.status());
    return locks;
  }

  // Returns the relation locks `sql` takes, from a rehearsal in a transaction that is rolled
  // back: a statement outside a transaction releases its locks as it ends, and the observer's
  // polling (ExecuteWatched) can miss them when it is quick. Only for statements PostgreSQL also
  // runs inside a transaction block. A rehearsal that fails says nothing; the real run decides.
  absl::StatusOr<std::vector<store::RelationLock>> Rehearse(const std::string& sql) {
    SLUICE_RETURN_IF_ERROR(Interrupted(work_->BeginWithLockTimeout(options_.ddl_lock_timeout)));
    std::vector<store::RelationLock> locks;
    if (work_->Execute(sql).ok()) {
      SLUICE_ASSIGN_OR_RETURN(locks, OwnLocks());
    }
    SLUICE_RETURN_IF_ERROR(Interrupted(work_->Rollback()));
    return locks;
  }

  // Runs a statement outside a transaction while the observer session polls its backend's locks
  // (they are released when it ends, so they can only be seen while it runs).
  absl::Status ExecuteWatched(const std::string& sql, std::vector<store::RelationLock>* seen) {
    std::atomic<bool> done{false};
    absl::Status observer_status;
    std::thread watcher([&] {
      const int pid = work_pid_;
      // Bounded by the statement: `done` is set as soon as it returns.
      while (!done) {
        absl::StatusOr<std::vector<store::RelationLock>> locks =
            observer_->inspector()->RelationLocks(pid);
        if (!locks.ok()) {
          observer_status = locks.status();
          return;
        }
        for (const store::RelationLock& lock : *locks) {
          if (!Contains(*seen, lock)) seen->push_back(lock);
        }
        // A short pause between polls spares the dev server; rules that depend on locks do not
        // rely on this polling (Rehearse reads them exactly).
        absl::SleepFor(absl::Microseconds(500));
      }
    });
    absl::Status status = work_->Execute(sql);
    done = true;
    watcher.join();
    if (status.ok() && !observer_status.ok()) return observer_status;
    return status;
  }

  const LintOptions& options_;
  const DevConnector& connect_;
  const std::string database_;
  const StopGuard& guard_;
  std::unique_ptr<store::Store> work_;
  int work_pid_ = 0;
  std::unique_ptr<store::Store> observer_;
  LintReport report_;
  // The catalog as the last revision left it, when it ran to the end (saves a read).
  std::optional<CatalogState> last_;
};

}  // namespace

absl::StatusOr<LintReport> Lint(const LintOptions& options, const DevConnector& connect) {
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<store::Store> admin, connect("", kApplicationName));
  const std::string database = absl::StrCat(options.database_prefix, RandomSuffix());
  const std::string drop =
      absl::StrCat("DROP DATABASE IF EXISTS ", sql::QuoteIdentifier(database), " WITH (FORCE)");
  absl::StatusOr<LintReport> report;
  {
    // From before the database exists to after it is gone: a signal in between drops it.
    StopGuard guard(options.stop, connect, database);
    absl::Status created =
        admin->Execute(absl::StrCat("CREATE DATABASE ", sql::QuoteIdentifier(database)));
    if (!created.ok()) {
      std::optional<failure::MigrationFailure> server = failure::MigrationFailureOf(created);
      if (server.has_value() && server->sqlstate == "42501") {
        return absl::PermissionDeniedError(absl::StrCat(
            "--dev-url: the role cannot create databases (", server->message,
            "); lint makes a scratch database of its own on the dev server: grant it with "
            "`ALTER ROLE <role> CREATEDB`, or give the URL of a dev server role that may create "
            "databases (never a production one)"));
      }
      return absl::Status(created.code(),
                          absl::StrCat("--dev-url: cannot create the scratch database ", database,
                                       ": ", created.message()));
    }
    log::Info("lint: scratch database created", {{"database", database}});
    LintRun run(options, connect, database, guard);
    report = guard.stopped() ? InterruptedError(database) : run.Run();
    run.Close();
    // Dropped here also after a stop: the stop's drop may have come before CREATE ended.
    absl::Status dropped = admin->Execute(drop);
    if (!dropped.ok()) {
      log::Error(absl::StrCat("could not drop the scratch database ", database,
                              "; drop it by hand: ", dropped.message()));
    }
    if (guard.stopped()) report = InterruptedError(database);
  }
  return report;
}

}  // namespace sluice::lint
