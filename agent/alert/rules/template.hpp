// Annotation templates: `{{ labels.X }}`, `{{ value | percent }}` and a few more, nothing else.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "alert/model.hpp"

namespace plugmon::agent::alert {

/// What a template may refer to.
struct template_vars {
    label_set labels;           ///< {{ labels.X }}; a missing label renders empty
    double value = 0;           ///< {{ value }}, in the kind's unit
    double threshold = 0;       ///< {{ threshold }}: the trigger of the current level
    std::uint64_t samples = 0;  ///< {{ samples }}: calls in `over`
    nanoseconds over{0};        ///< {{ over }}: rendered as a duration ("5m")
    /// {{ severity }}: "info", "warning" or "critical".
    alert::severity severity = alert::severity::warning;
};

/// Renders `tmpl`: text with `{{ NAME }}` or `{{ NAME | FILTER | ... }}` placeholders. NAME is
/// one of labels.X, value, threshold, samples, over, severity; FILTER is one of
///   percent   0.052 -> "5.2%"
///   duration  seconds -> "250ms", "1.5s", "2m"
///   bytes     IEC: 13107200 -> "12.5MiB"
///   humanize  SI: 1234 -> "1.23k", 0.0012 -> "1.2m"
/// Numbers print with at most three significant decimals. A problem (unclosed braces, an unknown
/// name or filter, a filter on text that is not a number) renders as
/// "<template error: WHAT>" in place of the whole result. Thread-safe; never throws except
/// std::bad_alloc.
std::string render_template(std::string_view tmpl, const template_vars& v);

/// The problem render_template would report for any values, or nullopt when `tmpl` is
/// well-formed. Used when loading rules, so that check-rules names the file and line.
std::optional<std::string> check_template(std::string_view tmpl);

}  // namespace plugmon::agent::alert
