// The per-alert state machine: levels with hysteresis, `for`, `keep_firing_for` and no data.
#include "alert/engine/instance.hpp"

#include "alert/engine/measure.hpp"

#include <cinttypes>
#include <cstdio>

namespace plugmon::agent::alert {

void instance::remember(time_point at, std::string what, std::string detail) {
    history.push_back({at, std::move(what), level, value, std::move(detail)});
    ++remembered;
    while (history.size() > history_limit) history.pop_front();
}

std::optional<severity> levels_holding(instance& a, const rule& r, double value) {
    std::optional<severity> highest;
    for (int s = 0; s < severity_count; ++s) {
        const auto& spec = r.levels[s];
        if (!spec) {
            a.level_on[std::size_t(s)] = false;
            continue;
        }
        const bool trigger = spec->above ? value > *spec->above : value < spec->below.value_or(0);
        bool& on = a.level_on[std::size_t(s)];
        if (!on)
            on = trigger;
        else if (spec->clear_below)
            on = !(value < *spec->clear_below);  // holds until the value crosses the clear line
        else if (spec->clear_above)
            on = !(value > *spec->clear_above);
        else
            on = trigger;
        if (on) highest = severity(s);
    }
    return highest;
}

namespace {

/// The highest level a rule declares (what on_no_data = "alert" fires at).
severity highest_level(const rule& r) {
    for (int s = severity_count - 1; s >= 0; --s)
        if (r.levels[s]) return severity(s);
    return severity::info;
}

void fire(instance& a, time_point now) {
    a.state = alert_state::firing;
    a.fired_at = now;
    a.keep_firing_since = {};
    a.remember(now, "firing");
}

/// Inside firing: a level up applies at once, a level down once it has lasted the delay.
bool follow_level(instance& a, const rule& r, severity target, time_point now) {
    if (target > a.level) {
        a.level = target;
        a.lowering.reset();
        a.remember(now, "level", std::string(to_string(target)));
        return true;
    }
    if (target == a.level) {
        a.lowering.reset();
        return false;
    }
    if (!a.lowering) a.lowering_since = now;
    a.lowering = target;
    if (now - a.lowering_since < r.severity_down_delay) return false;
    a.level = target;
    a.lowering.reset();
    a.remember(now, "level", std::string(to_string(target)));
    return true;
}

bool on_true(instance& a, const rule& r, severity target, time_point now,
             const std::function<std::string()>& new_episode) {
    a.keep_firing_since = {};
    switch (a.state) {
        case alert_state::inactive:
        case alert_state::resolved:
            // A new episode: its own ack and escalation; history, flap and delivery state carry on.
            a.state = alert_state::pending;
            a.ack.reset();
            a.escalation_step = a.escalation_loop = 0;
            a.escalation_fired = 0;
            a.fired_at = a.resolved_at = {};
            a.lowering.reset();
            a.episode = new_episode();
            a.active_at = a.last_data_at = now;
            a.level = target;
            a.remember(now, "pending");
            if (r.for_.count() <= 0) fire(a, now);
            return true;
        case alert_state::pending:
            a.level = target;
            if (now - a.active_at < r.for_) return false;
            fire(a, now);
            return true;
        case alert_state::firing:
            return follow_level(a, r, target, now);
    }
    return false;
}

bool on_false(instance& a, const rule& r, time_point now) {
    switch (a.state) {
        case alert_state::inactive:
        case alert_state::resolved:
            return false;
        case alert_state::pending:
            a.state = alert_state::inactive;
            a.remember(now, "inactive");
            return true;
        case alert_state::firing:
            if (a.keep_firing_since == time_point{}) a.keep_firing_since = now;
            if (now - a.keep_firing_since < r.keep_firing_for) return false;
            a.state = alert_state::resolved;
            a.resolved_at = now;
            a.lowering.reset();
            a.remember(now, "resolved");
            return true;
    }
    return false;
}

}  // namespace

bool step(instance& a, const rule& r, const measurement* m, time_point now,
          const std::function<std::string()>& new_episode) {
    std::optional<severity> target;
    if (m != nullptr && m->known && m->samples >= r.min_samples) {
        a.value = m->value;
        a.samples = m->samples;
        a.last_data_at = now;
        target = levels_holding(a, r, m->value);
    } else {
        if (m != nullptr) a.samples = m->samples;
        const nanoseconds stale = r.no_data_after.count() > 0 ? r.no_data_after : 3 * r.over;
        if (a.last_data_at == time_point{}) a.last_data_at = now;
        if (now - a.last_data_at < stale) return false;  // no data neither starts nor ends
        switch (r.on_no_data) {
            case no_data_policy::keep:
                return false;
            case no_data_policy::resolve:
                break;
            case no_data_policy::alert:
                target = highest_level(r);
                break;
        }
    }
    return target ? on_true(a, r, *target, now, new_episode) : on_false(a, r, now);
}

std::string fingerprint_of(const label_set& labels) {
    std::uint64_t h = 14695981039346656037ull;
    auto mix = [&h](std::string_view s) {
        for (const unsigned char c : s) {
            h ^= c;
            h *= 1099511628211ull;
        }
        h ^= 0xff;  // a separator no label text contains
        h *= 1099511628211ull;
    };
    for (const auto& [name, value] : labels) {
        mix(name);
        mix(value);
    }
    char out[17];
    std::snprintf(out, sizeof out, "%016" PRIx64, h);
    return out;
}

}  // namespace plugmon::agent::alert
