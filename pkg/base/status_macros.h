// Macros that propagate absl::Status early returns. abseil 20220623 ships none, so sluice keeps its
// own here, and only here.
#ifndef SLUICE_PKG_BASE_STATUS_MACROS_H_
#define SLUICE_PKG_BASE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define SLUICE_STATUS_CONCAT_INNER_(a, b) a##b
#define SLUICE_STATUS_CONCAT_(a, b) SLUICE_STATUS_CONCAT_INNER_(a, b)

// Returns the status of `expr` from the enclosing function when it is not OK.
#define SLUICE_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    const ::absl::Status sluice_status_ = (expr);    \
    if (!sluice_status_.ok()) return sluice_status_; \
  } while (false)

// Evaluates `rexpr` (an absl::StatusOr<T>); returns its status when not OK, else moves the value
// into `lhs`, which may be a declaration: SLUICE_ASSIGN_OR_RETURN(auto graph, Build(...));
#define SLUICE_ASSIGN_OR_RETURN(lhs, rexpr) \
  SLUICE_ASSIGN_OR_RETURN_IMPL_(SLUICE_STATUS_CONCAT_(sluice_statusor_, __LINE__), lhs, rexpr)

#define SLUICE_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                  \
  if (!statusor.ok()) return std::move(statusor).status();  \
  lhs = std::move(statusor).value()

#endif  // SLUICE_PKG_BASE_STATUS_MACROS_H_
