#include "pkg/lint/parse.h"

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace sluice::lint::internal {
namespace {

struct ProtobufResultDeleter {
  void operator()(PgQueryProtobufParseResult* result) const {
    pg_query_free_protobuf_parse_result(*result);
    delete result;
  }
};
struct ParseTreeDeleter {
  void operator()(PgQuery__ParseResult* tree) const {
    pg_query__parse_result__free_unpacked(tree, nullptr);
  }
};

// Returns whether a list of DefElem options (REINDEX's) holds `name`.
bool HasOption(size_t count, PgQuery__Node** options, absl::string_view name) {
  for (size_t i = 0; i < count; ++i) {
    const PgQuery__Node* option = options[i];
    if (option->node_case == PG_QUERY__NODE__NODE_DEF_ELEM &&
        option->def_elem->defname != nullptr && name == option->def_elem->defname) {
      return true;
    }
  }
  return false;
}

std::string AlterTableCommandName(const PgQuery__AlterTableCmd& command) {
  switch (command.subtype) {
    case PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumn:
      return "ADD COLUMN";
    case PG_QUERY__ALTER_TABLE_TYPE__AT_ColumnDefault:
      return "ALTER COLUMN ... SET DEFAULT";
    case PG_QUERY__ALTER_TABLE_TYPE__AT_DropNotNull:
      return "ALTER COLUMN ... DROP NOT NULL";
    case PG_QUERY__ALTER_TABLE_TYPE__AT_SetNotNull:
      return "ALTER COLUMN ... SET NOT NULL";
    case PG_QUERY__ALTER_TABLE_TYPE__AT_DropColumn:
      return "DROP COLUMN";
    case PG_QUERY__ALTER_TABLE_TYPE__AT_AddConstraint:
      return "ADD CONSTRAINT";
    case PG_QUERY__ALTER_TABLE_TYPE__AT_ValidateConstraint:
      return "VALIDATE CONSTRAINT";
    case PG_QUERY__ALTER_TABLE_TYPE__AT_DropConstraint:
      return "DROP CONSTRAINT";
    case PG_QUERY__ALTER_TABLE_TYPE__AT_AlterColumnType:
      return "ALTER COLUMN ... TYPE";
    case PG_QUERY__ALTER_TABLE_TYPE__AT_DetachPartition:
      return "DETACH PARTITION";
    default: {
      // The enum's own name, e.g. AT_SetStatistics.
      const ProtobufCEnumValue* value = protobuf_c_enum_descriptor_get_value(
          &pg_query__alter_table_type__descriptor, command.subtype);
      return value == nullptr ? std::string("...") : std::string(value->name);
    }
  }
}

void DescribeAlterTable(const PgQuery__AlterTableStmt& alter, StatementFacts* facts) {
  const bool index = alter.objtype == PG_QUERY__OBJECT_TYPE__OBJECT_INDEX;
  std::string commands;
  for (size_t i = 0; i < alter.n_cmds; ++i) {
    const PgQuery__Node* node = alter.cmds[i];
    if (node->node_case != PG_QUERY__NODE__NODE_ALTER_TABLE_CMD) continue;
    const PgQuery__AlterTableCmd& command = *node->alter_table_cmd;
    if (!commands.empty()) absl::StrAppend(&commands, ", ");
    absl::StrAppend(&commands, AlterTableCommandName(command));
    if (command.subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_DetachPartition && command.def &&
        command.def->node_case == PG_QUERY__NODE__NODE_PARTITION_CMD &&
        command.def->partition_cmd->concurrent) {
      facts->concurrently = true;
      facts->outside_transaction_only = true;
    }
  }
  facts->kind = absl::StrCat(index ? "ALTER INDEX" : "ALTER TABLE", commands.empty() ? "" : " ... ",
                             commands);
}

}  // namespace

absl::StatusOr<StatementFacts> ParseStatement(absl::string_view sql) {
  const std::string text(sql);
  std::unique_ptr<PgQueryProtobufParseResult, ProtobufResultDeleter> result(
      new PgQueryProtobufParseResult(pg_query_parse_protobuf(text.c_str())));
  if (result->error != nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("PostgreSQL's parser: ", result->error->message,
                                                   " (at character ", result->error->cursorpos,
                                                   ")"));
  }
  std::unique_ptr<PgQuery__ParseResult, ParseTreeDeleter> tree(pg_query__parse_result__unpack(
      nullptr, result->parse_tree.len, reinterpret_cast<const uint8_t*>(result->parse_tree.data)));
  if (tree == nullptr) return absl::InternalError("cannot read libpg_query's parse tree");
  StatementFacts facts;
  facts.kind = "statement";
  if (tree->n_stmts == 0 || tree->stmts[0]->stmt == nullptr) return facts;
  const PgQuery__Node& node = *tree->stmts[0]->stmt;
  switch (node.node_case) {
    case PG_QUERY__NODE__NODE_INDEX_STMT:
      facts.create_index = true;
      facts.concurrently = node.index_stmt->concurrent;
      facts.outside_transaction_only = facts.concurrently;
      facts.kind = absl::StrCat("CREATE ", node.index_stmt->unique ? "UNIQUE " : "", "INDEX",
                                facts.concurrently ? " CONCURRENTLY" : "");
      break;
    case PG_QUERY__NODE__NODE_DROP_STMT: {
      facts.concurrently = node.drop_stmt->concurrent;
      facts.outside_transaction_only = facts.concurrently;
      const ProtobufCEnumValue* type = protobuf_c_enum_descriptor_get_value(
          &pg_query__object_type__descriptor, node.drop_stmt->remove_type);
      std::string object(
          absl::StripPrefix(type == nullptr ? absl::string_view() : type->name, "OBJECT_"));
      for (char& c : object) c = c == '_' ? ' ' : c;
      facts.kind = absl::StrCat("DROP ", object, facts.concurrently ? " CONCURRENTLY" : "");
      break;
    }
    case PG_QUERY__NODE__NODE_REINDEX_STMT:
      facts.concurrently =
          HasOption(node.reindex_stmt->n_params, node.reindex_stmt->params, "concurrently");
      facts.outside_transaction_only = facts.concurrently;
      facts.kind = facts.concurrently ? "REINDEX CONCURRENTLY" : "REINDEX";
      break;
    case PG_QUERY__NODE__NODE_ALTER_TABLE_STMT:
      DescribeAlterTable(*node.alter_table_stmt, &facts);
      break;
    case PG_QUERY__NODE__NODE_TRUNCATE_STMT:
      facts.truncate = true;
      facts.kind = "TRUNCATE";
      break;
    case PG_QUERY__NODE__NODE_RENAME_STMT:
      facts.kind = node.rename_stmt->rename_type == PG_QUERY__OBJECT_TYPE__OBJECT_COLUMN
                       ? "ALTER TABLE ... RENAME COLUMN"
                       : "ALTER ... RENAME";
      break;
    case PG_QUERY__NODE__NODE_VACUUM_STMT:
      facts.outside_transaction_only = node.vacuum_stmt->is_vacuumcmd;
      facts.kind = node.vacuum_stmt->is_vacuumcmd ? "VACUUM" : "ANALYZE";
      break;
    case PG_QUERY__NODE__NODE_CREATEDB_STMT:
      facts.outside_transaction_only = true;
      facts.kind = "CREATE DATABASE";
      break;
    case PG_QUERY__NODE__NODE_CREATE_STMT:
      facts.kind = "CREATE TABLE";
      break;
    case PG_QUERY__NODE__NODE_CLUSTER_STMT:
      facts.kind = "CLUSTER";
      break;
    case PG_QUERY__NODE__NODE_REFRESH_MAT_VIEW_STMT:
      facts.kind = node.refresh_mat_view_stmt->concurrent ? "REFRESH MATERIALIZED VIEW CONCURRENTLY"
                                                          : "REFRESH MATERIALIZED VIEW";
      break;
    case PG_QUERY__NODE__NODE_INSERT_STMT:
      facts.kind = "INSERT";
      break;
    case PG_QUERY__NODE__NODE_UPDATE_STMT:
      facts.kind = "UPDATE";
      break;
    case PG_QUERY__NODE__NODE_DELETE_STMT:
      facts.kind = "DELETE";
      break;
    case PG_QUERY__NODE__NODE_SELECT_STMT:
      facts.kind = "SELECT";
      break;
    default: {
      // The node's own name, e.g. create_function_stmt.
      const ProtobufCFieldDescriptor* field = protobuf_c_message_descriptor_get_field(
          &pg_query__node__descriptor, static_cast<unsigned>(node.node_case));
      if (field != nullptr) facts.kind = field->name;
      break;
    }
  }
  return facts;
}

}  // namespace sluice::lint::internal
