// Rules files: TOML in, a validated alert::rule_set out, with every problem named by file:line.
#pragma once

#include <iosfwd>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "alert/model.hpp"
#include "alert/rules/glob.hpp"
#include "alert/rules/template.hpp"

namespace plugmon::agent::alert {

// The unit of each kind's value, and how thresholds (above, below, clear_*) may be written. A
// bare number is always accepted and is in the unit of the first column.
//
//   kind              unit                 also written as          labels (select, group_by)
//   ----------------  -------------------  -----------------------  -------------------------
//   error_ratio       ratio 0..1           "5%"                     plugin, op, table, tenant
//   latency_quantile  seconds              "250ms", "1.5s"          plugin, op, table, tenant
//   slow_rate         slow queries / s     "10/m", "2/s", "60/h"    plugin, op, table, tenant
//   cpu_rate          cores (CPU s / s)    -                        plugin, tenant
//   heap_bytes        bytes                "512MiB", "2GB"          plugin
//   heap_leak         bytes / s            "1MiB/h", "100KiB/s"     plugin
//   process_rss       bytes                "512MiB"                 process, pid
//   process_fds       ratio 0..1 of limit  "80%"                    process, pid
//   process_threads   ratio 0..1 of limit  "80%"                    process, pid
//   pool_utilization  ratio 0..1           "90%"                    plugin
//   pool_waiting      waiting requests     -                        plugin
//   ring_drops        events over `over`   -                        process, pid
//   store_down        seconds failing      "60s"                    -
//   watchdog          always 1             (no levels)              -
//
// Ratios must lie in 0..1; every threshold is finite and not negative.
//
// Kinds with special levels:
// - watchdog takes no [rule.levels]: it fires at `severity = "info" | "warning" | "critical"`
//   (default info), stored as that level with above = 0 (its value is always 1).
// - store_down without any level fires critical when the store fails at all (above = 0); add
//   `for = "1m"` to wait, or give levels as for any other kind.
// - min_samples counts calls (queries or executions) and is accepted only by error_ratio,
//   latency_quantile, slow_rate and cpu_rate; [defaults] min_samples applies to those alone.
// - quantile (0 < q < 1, default 0.99) is accepted only by latency_quantile.
//
// [defaults] (receivers, repeat_interval, notify_delay, severity_down_delay, for,
// keep_firing_for, over, min_samples, on_no_data) applies to the rules of the same file that do
// not set the key themselves.

/// Invalid rules: one message per problem, each "FILE:LINE: key 'rule.levels.warning.abve':
/// unknown key" (the key is the dotted TOML path without array indices). what() is all of them,
/// one per line.
class rules_error : public std::runtime_error {
public:
    explicit rules_error(std::vector<std::string> errors);
    /// Every problem found, in file order.
    const std::vector<std::string>& errors() const noexcept { return errors_; }

private:
    std::vector<std::string> errors_;
};

/// The labels a kind's series carry: what `select` and `group_by` may name. Thread-safe (the
/// tables are constant); never throws.
const std::vector<std::string>& labels_of(rule_kind kind);

/// Parses and validates one rules file's text; `file_name` is used in messages and in
/// rule::file. References to receivers and escalation policies must resolve within this text.
/// Throws rules_error listing every problem of the file.
rule_set parse_rules(std::string_view toml_text, const std::string& file_name);

/// Reads every file named by `patterns` (a path, or a glob(3) pattern that must match at least
/// one file), validates each, merges them (a name declared twice, in one file or in two, is an
/// error naming both places), resolves references across files, and fills `files` and `digest`.
/// An empty list gives an empty set. Throws rules_error listing every problem found.
rule_set load_rules(const std::vector<std::string>& patterns);

/// `plugmon-agent check-rules FILE...`: validates the files as one set. Prints "FILE: N rules,
/// M receivers, K escalation policies: OK" per good file to `out`, every problem to `err`, and
/// returns 0 when all is well, else 1. Never throws (except std::bad_alloc).
int check_rules(const std::vector<std::string>& files, std::ostream& out, std::ostream& err);

/// A hex SHA-256 over a canonical dump of `set` (rules, receivers, policies; not the file names
/// and lines), so that the same declarations give the same digest wherever they are written.
std::string digest_of(const rule_set& set);

}  // namespace plugmon::agent::alert
