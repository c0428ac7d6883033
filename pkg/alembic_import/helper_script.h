// alembic_helper.py, embedded in the binary at build time so that `sluice import alembic` needs
// no file beside it. Internal to pkg/alembic_import.
#ifndef SLUICE_PKG_ALEMBIC_IMPORT_HELPER_SCRIPT_H_
#define SLUICE_PKG_ALEMBIC_IMPORT_HELPER_SCRIPT_H_

#include "absl/strings/string_view.h"

namespace sluice::alembic_import {

// Returns the text of alembic_helper.py.
absl::string_view AlembicHelperScript();

}  // namespace sluice::alembic_import

#endif  // SLUICE_PKG_ALEMBIC_IMPORT_HELPER_SCRIPT_H_
