// The ids of `sluice lint`'s rules that a manifest's `lint_allow` may name. The manifest loader
// rejects any other id, so a typo cannot silently allow nothing; pkg/lint's rule catalog holds
// the same ids (its tests check that the two agree). Constant data; thread-safe.
#ifndef SLUICE_PKG_MANIFEST_LINT_RULES_H_
#define SLUICE_PKG_MANIFEST_LINT_RULES_H_

#include "absl/strings/string_view.h"

namespace sluice::manifest {

inline constexpr absl::string_view kAllowableLintRules[] = {
    "table-rewrite",
    "validation-scan",
    "index-not-concurrent",
    "concurrently-in-transaction",
    "data-loss",
    "add-not-null-column",
    "rename",
    "access-exclusive",
};

}  // namespace sluice::manifest

#endif  // SLUICE_PKG_MANIFEST_LINT_RULES_H_
