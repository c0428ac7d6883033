// The revision graph's target grammar: head, heads, base, ids and prefixes, branch labels,
// LABEL@..., and relative targets (+N, -N, REV+N, REV-N), resolved as Alembic's RevisionMap does.
#include "pkg/graph/revision_graph_impl.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "pkg/base/status_macros.h"
#include "pkg/base/text.h"

namespace sluice::graph {
namespace {

using internal::DidYouMean;
using internal::kBase;
using internal::kBaseKeyword;
using internal::kHeadKeyword;
using internal::kHeadsKeyword;
using internal::kMaxListedMatches;
using internal::kMinPrefixMatchedIdLength;
using internal::kTargetForms;
using internal::Quoted;
using manifest::Migration;

// A relative target `[SYMBOL]+N` / `[SYMBOL]-N` split into its parts.
struct Relative {
  std::string symbol;  // empty: relative to the version table's rows
  int steps = 0;       // signed
};

// Parses `text` as a relative target; nullopt when it is not one. N must fit an int.
absl::StatusOr<std::optional<Relative>> ParseRelative(absl::string_view text) {
  const size_t sign = text.find_last_of("+-");
  if (sign == absl::string_view::npos || sign + 1 == text.size()) return std::nullopt;
  const absl::string_view digits = text.substr(sign + 1);
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  int count = 0;
  if (!absl::SimpleAtoi(digits, &count) || count > 1000000000) {
    return absl::InvalidArgumentError(
        absl::StrCat("relative target ", Quoted(text), ": the step count is too large"));
  }
  if (count == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "relative target ", Quoted(text), " moves 0 steps; use +N or -N with N of at least 1"));
  }
  Relative relative;
  relative.symbol = std::string(text.substr(0, sign));
  relative.steps = text[sign] == '+' ? count : -count;
  return relative;
}

}  // namespace

absl::StatusOr<int> RevisionGraph::Impl::ResolveId(absl::string_view text, const Lineage* lineage,
                                                   absl::string_view branch_text) const {
  const auto not_on_branch = [&](int node) {
    return absl::InvalidArgumentError(
        absl::StrCat("revision ", Id(node), " is not a member of branch ", Quoted(branch_text)));
  };
  int node = FindNode(text);
  if (node == kBase) {
    auto label = by_label.find(text);
    if (label != by_label.end()) node = label->second;
  }
  if (node != kBase) {
    if (lineage != nullptr && !lineage->Has(node)) return not_on_branch(node);
    return node;
  }
  std::vector<int> matches;
  auto it = std::lower_bound(sorted_ids.begin(), sorted_ids.end(), text,
                             [this](int a, absl::string_view b) { return Id(a) < b; });
  for (; it != sorted_ids.end() && absl::StartsWith(Id(*it), text); ++it) {
    if (Id(*it).size() < kMinPrefixMatchedIdLength) continue;
    if (lineage != nullptr && !lineage->Has(*it)) continue;
    matches.push_back(*it);
  }
  if (matches.empty()) {
    std::string message = absl::StrCat("no revision, branch label or id prefix matches ",
                                       Quoted(text), DidYouMean(Suggest(text, true)));
    if (lineage != nullptr) absl::StrAppend(&message, " on branch ", Quoted(branch_text));
    return absl::NotFoundError(absl::StrCat(message, "; ", kTargetForms));
  }
  if (matches.size() > 1) {
    std::vector<std::string> names;
    for (size_t i = 0; i < matches.size() && i < kMaxListedMatches; ++i) {
      names.push_back(Id(matches[i]));
    }
    std::string more;
    if (matches.size() > kMaxListedMatches) {
      more = absl::StrCat(" and ", matches.size() - kMaxListedMatches, " more");
    }
    return absl::InvalidArgumentError(
        absl::StrCat("revision prefix ", Quoted(text), " is ambiguous: it matches ",
                     absl::StrJoin(names, ", "), more, "; give more characters"));
  }
  return matches.front();
}

absl::StatusOr<int> RevisionGraph::Impl::SingleHead(const Lineage* lineage,
                                                    absl::string_view target) const {
  std::vector<int> found;
  for (int head : heads) {
    if (lineage == nullptr || lineage->Has(head)) found.push_back(head);
  }
  if (found.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "target ", Quoted(target), " is ambiguous: there are ", found.size(), " heads (",
        absl::StrJoin(Names(found), ", "),
        "); use `heads` for all of them, LABEL@head for one branch, or a revision id"));
  }
  return found.empty() ? kBase : found.front();
}

absl::StatusOr<int> RevisionGraph::Impl::Walk(int start, int steps, const Lineage* lineage,
                                              absl::string_view target) const {
  int node = start;
  const int count = steps < 0 ? -steps : steps;
  for (int step = 0; step < count; ++step) {
    if (steps > 0) {
      std::vector<int> next;
      for (int child : node == kBase ? bases : children[node]) {
        if (lineage == nullptr || lineage->Has(child)) next.push_back(child);
      }
      if (next.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("target ", Quoted(target), " walks past a head: ", Name(node),
                         " has no revision above it", lineage != nullptr ? " on the branch" : "",
                         " (", step, " of ", count, " steps taken)"));
      }
      if (next.size() > 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("target ", Quoted(target), " is ambiguous: ",
                         node == kBase ? "there are several bases ("
                                       : absl::StrCat(Id(node), " is a branch point ("),
                         absl::StrJoin(Names(next), ", "), node == kBase ? "" : " are above it",
                         "); use LABEL@+N to pick a branch, or name the revision"));
      }
      node = next.front();
    } else {
      if (node == kBase) {
        return absl::InvalidArgumentError(absl::StrCat("target ", Quoted(target),
                                                       " walks below base (", step, " of ", count,
                                                       " steps taken)"));
      }
      if (parents[node].size() > 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            "target ", Quoted(target), " is ambiguous: ", Id(node), " is a merge of ",
            absl::StrJoin(Names(parents[node]), ", "), "; name the revision to go down to"));
      }
      node = parents[node].empty() ? kBase : parents[node].front();
    }
  }
  return node;
}

// Picks the revision that `+N` / `-N` count from: the version table's row (on the branch, when
// one is named). Alembic refuses several with +N and warns with -N that it will refuse them too.
absl::StatusOr<int> RevisionGraph::Impl::StartFromCurrent(const State& state,
                                                          const Lineage* lineage,
                                                          absl::string_view branch_text, int steps,
                                                          absl::string_view target) const {
  std::vector<int> starts;
  for (int row : state.rows) {
    if (lineage == nullptr || lineage->Has(row)) starts.push_back(row);
  }
  if (starts.empty() && lineage != nullptr) {
    // The branch's latest applied revision is hidden below a row on another branch (a merge or a
    // dependency): count from the tips of what is applied on the branch.
    std::vector<char> covered(size(), 0);
    for (int node = 0; node < size(); ++node) {
      if (!state.applied[node] || !lineage->Has(node)) continue;
      for (int down : downs[node]) covered[down] = 1;
    }
    for (int node = 0; node < size(); ++node) {
      if (state.applied[node] && lineage->Has(node) && !covered[node]) starts.push_back(node);
    }
  }
  if (starts.empty()) {
    if (steps > 0) return kBase;
    return absl::InvalidArgumentError(absl::StrCat(
        "target ", Quoted(target), " counts down from the current revision, but nothing is applied",
        lineage != nullptr ? absl::StrCat(" on branch ", Quoted(branch_text)) : ""));
  }
  if (starts.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("target ", Quoted(target), " is ambiguous: the version table holds ",
                     absl::StrJoin(Names(starts), ", "), "; use LABEL@", steps > 0 ? "+" : "-",
                     steps > 0 ? steps : -steps, " to pick a branch, or REV", steps > 0 ? "+" : "-",
                     steps > 0 ? steps : -steps));
  }
  return starts.front();
}

absl::StatusOr<RevisionGraph::Impl::Target> RevisionGraph::Impl::Resolve(
    absl::string_view target, const std::vector<std::string>& current, const State* state) const {
  Target result;
  if (target.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("empty target; ", kTargetForms));
  }
  // A whole id wins over every other reading: sluice ids may contain '-' (Alembic's may not), so
  // `v-2` names revision v-2 when there is one, and means "two below v" only when there is not.
  if (const int node = FindNode(target); node != kBase) {
    result.nodes = {node};
    return result;
  }
  if (auto label = by_label.find(target); label != by_label.end()) {
    result.nodes = {label->second};
    return result;
  }
  if (target == kHeadsKeyword) {
    // Alembic upgrades `heads` to its "real" heads: a revision that only others' depends_on
    // name is applied by them, and its row is replaced by theirs.
    result.nodes = real_heads;
    return result;
  }
  if (target == kHeadKeyword) {
    SLUICE_ASSIGN_OR_RETURN(const int head, SingleHead(nullptr, target));
    if (head != kBase) result.nodes = {head};
    return result;
  }
  if (target == kBaseKeyword) return result;

  absl::string_view rest = target;
  absl::string_view branch_text;
  std::optional<Lineage> lineage;
  if (const size_t at = target.find('@'); at != absl::string_view::npos) {
    branch_text = target.substr(0, at);
    rest = target.substr(at + 1);
    if (branch_text.empty() || rest.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("target ", Quoted(target), " needs LABEL@REV, e.g. LABEL@head"));
    }
    // Alembic accepts a revision where a label is expected (RevisionMap._resolve_branch).
    absl::StatusOr<int> branch = ResolveId(branch_text, nullptr, "");
    if (!branch.ok()) {
      if (branch.status().code() != absl::StatusCode::kNotFound) return branch.status();
      return absl::NotFoundError(absl::StrCat("no branch label or revision ", Quoted(branch_text),
                                              " (in target ", Quoted(target), ")",
                                              DidYouMean(Suggest(branch_text, true))));
    }
    result.branch = *branch;
    lineage = LineageOf(*branch);
  }
  const Lineage* on_branch = lineage.has_value() ? &*lineage : nullptr;

  // `LABEL@REV` where REV is a whole id or label (before the relative reading, as above).
  if (on_branch != nullptr && (FindNode(rest) != kBase || by_label.contains(rest))) {
    SLUICE_ASSIGN_OR_RETURN(const int node, ResolveId(rest, on_branch, branch_text));
    result.nodes = {node};
    return result;
  }

  SLUICE_ASSIGN_OR_RETURN(std::optional<Relative> relative, ParseRelative(rest));
  if (relative.has_value()) {
    int start = kBase;
    result.relative_steps = relative->steps;
    if (relative->symbol.empty()) {
      result.from_current = true;
      std::optional<State> read;
      if (state == nullptr) {
        SLUICE_ASSIGN_OR_RETURN(read, ReadState(current));
        state = &*read;
      }
      SLUICE_ASSIGN_OR_RETURN(
          start, StartFromCurrent(*state, on_branch, branch_text, relative->steps, target));
      // Alembic's `downgrade -N` treats the row it counts from as the branch, so that a branch
      // point below it only unwinds this branch.
      if (!result.branch.has_value() && relative->steps < 0) result.branch = start;
    } else if (relative->symbol == kHeadKeyword) {
      SLUICE_ASSIGN_OR_RETURN(start, SingleHead(on_branch, target));
    } else if (relative->symbol == kBaseKeyword) {
      start = kBase;
    } else {
      SLUICE_ASSIGN_OR_RETURN(start, ResolveId(relative->symbol, on_branch, branch_text));
    }
    SLUICE_ASSIGN_OR_RETURN(
        const int node,
        Walk(start, relative->steps, relative->steps > 0 ? on_branch : nullptr, target));
    if (node != kBase) result.nodes = {node};
    return result;
  }

  if (on_branch == nullptr) {
    SLUICE_ASSIGN_OR_RETURN(const int node, ResolveId(rest, nullptr, ""));
    result.nodes = {node};
    return result;
  }
  if (rest == kHeadKeyword) {
    SLUICE_ASSIGN_OR_RETURN(const int head, SingleHead(on_branch, target));
    if (head != kBase) result.nodes = {head};
    return result;
  }
  if (rest == kHeadsKeyword) {
    for (int head : heads) {
      if (on_branch->Has(head)) result.nodes.push_back(head);
    }
    return result;
  }
  if (rest == kBaseKeyword) return result;
  SLUICE_ASSIGN_OR_RETURN(const int node, ResolveId(rest, on_branch, branch_text));
  result.nodes = {node};
  return result;
}

absl::StatusOr<std::vector<std::string>> RevisionGraph::ResolveTarget(
    absl::string_view target, const std::vector<std::string>& current) const {
  SLUICE_ASSIGN_OR_RETURN(Impl::Target resolved, impl_->Resolve(target, current, nullptr));
  return impl_->Names(resolved.nodes);
}

}  // namespace sluice::graph
