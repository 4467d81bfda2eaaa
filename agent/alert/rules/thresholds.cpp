// Threshold values per kind ("5%", "250ms", "512MiB", "1MiB/h") and the levels that hold them.
#include "alert/rules/thresholds.hpp"

#include <charconv>
#include <cmath>

#include "common/duration.hpp"

namespace plugmon::agent::alert::detail {

namespace {

enum class unit { ratio, seconds, per_second, cores, bytes, bytes_per_second, count, none };

unit unit_of(rule_kind kind) {
    switch (kind) {
        case rule_kind::error_ratio:
        case rule_kind::process_fds:
        case rule_kind::process_threads:
        case rule_kind::pool_utilization:
            return unit::ratio;
        case rule_kind::latency_quantile:
        case rule_kind::store_down:
            return unit::seconds;
        case rule_kind::slow_rate:
            return unit::per_second;
        case rule_kind::cpu_rate:
            return unit::cores;
        case rule_kind::heap_bytes:
        case rule_kind::process_rss:
            return unit::bytes;
        case rule_kind::heap_leak:
            return unit::bytes_per_second;
        case rule_kind::pool_waiting:
        case rule_kind::ring_drops:
            return unit::count;
        case rule_kind::watchdog:
            return unit::none;
    }
    return unit::none;
}

std::optional<double> parse_plain(std::string_view text) {
    double x = 0;
    const auto r = std::from_chars(text.data(), text.data() + text.size(), x);
    if (text.empty() || r.ec != std::errc{} || r.ptr != text.data() + text.size())
        return std::nullopt;
    return x;
}

/// Seconds in "/s", "/m", "/h", "/d".
std::optional<double> per_unit(std::string_view suffix) {
    if (suffix == "s") return 1.0;
    if (suffix == "m") return 60.0;
    if (suffix == "h") return 3600.0;
    if (suffix == "d") return 86400.0;
    return std::nullopt;
}

/// "N/s", "N/m", ... with N parsed by `amount`.
template <class Amount>
std::optional<double> parse_rate(std::string_view text, Amount amount) {
    const auto slash = text.rfind('/');
    if (slash == std::string_view::npos) return std::nullopt;
    const auto per = per_unit(text.substr(slash + 1));
    const auto n = amount(text.substr(0, slash));
    if (!per || !n) return std::nullopt;
    return *n / *per;
}

std::optional<double> parse_bytes(std::string_view text) {
    if (const auto n = parse_size(text)) return double(*n);
    return std::nullopt;
}

/// The string form of a threshold in `u`, or nullopt with `hint` saying what was expected.
std::optional<double> parse_text(unit u, std::string_view text, std::string& hint) {
    switch (u) {
        case unit::ratio:
            hint = "a ratio such as 0.05 or \"5%\"";
            if (text.size() > 1 && text.back() == '%') {
                if (const auto x = parse_plain(text.substr(0, text.size() - 1))) return *x / 100;
            }
            return std::nullopt;
        case unit::seconds:
            hint = "seconds such as 0.25 or a duration such as \"250ms\"";
            if (const auto d = parse_duration(text))
                return std::chrono::duration<double>(*d).count();
            return std::nullopt;
        case unit::per_second:
            hint = "a rate per second such as 0.5, or \"10/m\"";
            return parse_rate(text, parse_plain);
        case unit::bytes:
            hint = "bytes such as 536870912 or \"512MiB\"";
            return parse_bytes(text);
        case unit::bytes_per_second:
            hint = "bytes per second such as 1024, or \"1MiB/h\", \"100KiB/s\"";
            return parse_rate(text, parse_bytes);
        case unit::cores:
            hint = "a number of cores such as 0.8";
            return std::nullopt;
        case unit::count:
            hint = "a count such as 10";
            return std::nullopt;
        case unit::none:
            hint = "nothing (this kind has no thresholds)";
            return std::nullopt;
    }
    return std::nullopt;
}

/// One threshold key of a level table, in the kind's unit.
std::optional<double> read_threshold(const fields& f, std::string_view k, rule_kind kind) {
    const toml::node* n = f.get(k);
    if (n == nullptr) return std::nullopt;
    const unit u = unit_of(kind);
    std::optional<double> x;
    if (n->is_string()) {
        std::string hint;
        const std::string& text = n->as_string()->get();
        x = parse_text(u, text, hint);
        if (!x) {
            f.fail(k, agent::quoted(text) + " is not " + hint + " (kind " +
                          std::string(to_string(kind)) + ")");
            return std::nullopt;
        }
    } else {
        x = f.number(k);
        if (!x) return std::nullopt;
    }
    if (!std::isfinite(*x) || *x < 0) {
        f.fail(k, format_number(*x) + " is negative or not finite");
        return std::nullopt;
    }
    if (u == unit::ratio && *x > 1) {
        f.fail(k, format_number(*x) + " is not a ratio in 0..1 (kind " +
                      std::string(to_string(kind)) + ")");
        return std::nullopt;
    }
    return x;
}

/// Checks the hysteresis pair of one level; false when the level is unusable.
bool check_level(const fields& f, const level_spec& l) {
    bool ok = true;
    const toml::source_region& at = f.table().source();
    const std::string k = f.key("");
    const std::string self = k.substr(0, k.size() - 1);
    if (l.above && l.below) {
        f.ctx().error(at, self, "has both above and below (a level triggers one way)");
        return false;
    }
    if (!l.above && !l.below) {
        f.ctx().error(at, self, "needs above or below");
        return false;
    }
    if (l.clear_below && l.clear_above) {
        f.ctx().error(at, self, "has both clear_below and clear_above");
        return false;
    }
    if (l.above && l.clear_above) {
        f.fail("clear_above", "goes with below; a level with above clears with clear_below");
        ok = false;
    }
    if (l.below && l.clear_below) {
        f.fail("clear_below", "goes with above; a level with below clears with clear_above");
        ok = false;
    }
    if (l.above && l.clear_below && *l.clear_below > *l.above) {
        f.fail("clear_below", format_number(*l.clear_below) +
                                  " is above the trigger above = " + format_number(*l.above) +
                                  " (the clear threshold must be on the safe side)");
        ok = false;
    }
    if (l.below && l.clear_above && *l.clear_above < *l.below) {
        f.fail("clear_above", format_number(*l.clear_above) +
                                  " is below the trigger below = " + format_number(*l.below) +
                                  " (the clear threshold must be on the safe side)");
        ok = false;
    }
    return ok;
}

/// Higher severities must be further from the safe side, all in one direction.
void check_order(context& c, const toml::table& levels, const rule& r) {
    const level_spec* prev = nullptr;
    std::string_view prev_name;
    for (int s = 0; s < severity_count; ++s) {
        const auto& l = r.levels[s];
        if (!l) continue;
        const auto name = to_string(severity(s));
        const auto& where = levels.get(name)->source();
        const std::string key = "rule.levels." + std::string(name);
        if (prev != nullptr && bool(prev->above) != bool(l->above)) {
            c.error(where, key, "triggers the other way than level " + std::string(prev_name));
        } else if (prev != nullptr && l->above && *l->above < *prev->above) {
            c.error(where, key,
                    "above = " + format_number(*l->above) + " is lower than level " +
                        std::string(prev_name) + "'s (a higher severity needs a " +
                        "threshold at least as far)");
        } else if (prev != nullptr && l->below && *l->below > *prev->below) {
            c.error(where, key,
                    "below = " + format_number(*l->below) + " is higher than level " +
                        std::string(prev_name) + "'s (a higher severity needs a " +
                        "threshold at least as far)");
        }
        prev = &*l;
        prev_name = name;
    }
}

}  // namespace

void read_levels(const fields& rule_fields, std::optional<rule_kind> kind, rule& r) {
    const toml::table* levels = rule_fields.sub_table("levels");
    if (levels == nullptr) return;
    fields lf(rule_fields.ctx(), *levels, "rule.levels", {"info", "warning", "critical"});
    bool all_ok = true;
    for (int s = 0; s < severity_count; ++s) {
        const auto name = to_string(severity(s));
        const toml::table* t = lf.sub_table(name);
        if (t == nullptr) continue;
        fields f(rule_fields.ctx(), *t, "rule.levels." + std::string(name),
                 {"above", "below", "clear_below", "clear_above"});
        if (!kind) continue;  // the kind's own error is reported; its unit is unknown
        level_spec l;
        l.above = read_threshold(f, "above", *kind);
        l.below = read_threshold(f, "below", *kind);
        l.clear_below = read_threshold(f, "clear_below", *kind);
        l.clear_above = read_threshold(f, "clear_above", *kind);
        const bool bad_value = (f.get("above") && !l.above) || (f.get("below") && !l.below) ||
                               (f.get("clear_below") && !l.clear_below) ||
                               (f.get("clear_above") && !l.clear_above);
        if (bad_value || !check_level(f, l)) {
            all_ok = false;
            continue;
        }
        r.levels[s] = l;
    }
    if (all_ok) check_order(rule_fields.ctx(), *levels, r);
}

}  // namespace plugmon::agent::alert::detail
