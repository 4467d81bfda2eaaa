// Private to rules/: reads [rule.levels.*] thresholds in the unit of the rule's kind.
#pragma once

#include <optional>

#include "alert/model.hpp"
#include "alert/rules/fields.hpp"

namespace plugmon::agent::alert::detail {

/// Reads `levels` of a rule table into r.levels, checking keys, units (see the table in
/// rules.hpp), the hysteresis side and the order across severities. With `kind` unknown only
/// the keys are checked.
void read_levels(const fields& rule_fields, std::optional<rule_kind> kind, rule& r);

}  // namespace plugmon::agent::alert::detail
