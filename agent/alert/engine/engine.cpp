// The alert engine: evaluation on each closed window, notification events, acks and silences.
#include "alert/engine/engine.hpp"

#include "alert/rules/rules.hpp"
#include "common/exposition.hpp"
#include "common/rfc3339.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <random>

namespace plugmon::agent::alert {

namespace {

constexpr double eval_buckets[] = {0.0001, 0.001, 0.01, 0.1, 1, 10};

/// Receivers that only keep state (Alertmanager re-sends on its own) get state events only.
bool state_event(event_kind e) {
    return e == event_kind::firing || e == event_kind::resolved ||
           e == event_kind::severity_changed;
}

label_set identity(const rule& r, const label_set& group, const std::string& host) {
    label_set l = group;
    for (const auto& [k, v] : r.labels) l[k] = v;
    l["alertname"] = r.name;
    if (!host.empty()) l["host"] = host;
    return l;
}

double threshold_of(const rule& r, severity s) {
    const auto& spec = r.levels[int(s)];
    if (!spec) return 0;
    return spec->above ? *spec->above : spec->below.value_or(0);
}

}  // namespace

engine::engine(rule_set rules, std::shared_ptr<notification_sink> out, engine_options opts)
    : out_(std::move(out)), opts_(std::move(opts)), history_(std::chrono::hours(1)),
      eval_seconds_(std::size(eval_buckets) + 1, 0) {
    replace_rules(std::move(rules));
    restore();
}

void engine::replace_rules(rule_set rules) {
    std::vector<notification> out;
    std::lock_guard<std::mutex> lock(mu_);
    {
        rules_ = std::move(rules);
        by_name_.clear();
        nanoseconds keep{std::chrono::minutes(1)};
        for (const auto& r : rules_.rules) {
            by_name_[r.name] = &r;
            keep = std::max(keep, r.over);
        }
        history_ = window_history(keep + std::chrono::minutes(1));
        // Alerts whose rule is gone resolve (their receivers hear it), then go.
        const time_point t = now();
        for (auto it = alerts_.begin(); it != alerts_.end();) {
            if (by_name_.count(it->second.a.rule) != 0) {
                ++it;
                continue;
            }
            instance& a = it->second.a;
            rule gone;
            gone.name = a.rule;
            if (a.state == alert_state::firing) {
                a.state = alert_state::resolved;
                a.resolved_at = t;
                a.remember(t, "resolved", "its rule was removed");
                a.notified_status = 0;
                a.pending_status.reset();
                notify(a, gone, t, out);
            }
            it = alerts_.erase(it);
        }
        for (auto it = live_.begin(); it != live_.end();)
            it = by_name_.count(it->first) != 0 ? std::next(it) : live_.erase(it);
        forget_removed_receivers();
    }
    if (!out.empty()) commit(out, now());
}

void engine::forget_removed_receivers() {
    // A receiver that is gone hears nothing more about the alerts it was told of (no resolve
    // either); one of that name configured later starts afresh and gets the firing again.
    std::map<std::string, std::uint64_t> told;
    for (auto& [fingerprint, s] : alerts_) {
        auto& progress = s.a.receivers;
        for (auto it = progress.begin(); it != progress.end();) {
            if (receiver(it->first) != nullptr) {
                ++it;
                continue;
            }
            if (it->second.status > 0) ++told[it->first];
            it = progress.erase(it);
        }
    }
    for (const auto& [name, alerts] : told)
        spdlog::warn(
            "alerts: receiver {} was removed while {} alerts it was told of were firing; it gets "
            "no resolve for them",
            name, alerts);
}

void engine::set_reload_result(bool ok) {
    std::lock_guard<std::mutex> lock(mu_);
    reload_ok_ = ok;
}

void engine::consume(const window_ptr& w) {
    std::lock_guard<std::mutex> lock(mu_);
    history_.add(w);
    std::vector<notification> out;
    evaluate(history_.now(), out);
    commit(out, now());
}

void engine::commit(std::vector<notification>& out, time_point t) {
    if (!out.empty() && out_) {
        try {
            out_->submit(std::move(out));
        } catch (const std::exception& e) {
            ++delivery_failures_;
            spdlog::error("alerts: notifications could not be queued: {}", e.what());
        }
    }
    out.clear();
    save(t);
    if (!opts_.history) return;
    std::vector<alert_row> rows;
    for (auto& [fp, s] : alerts_) collect_history(s, rows);
    for (auto& r : rows) r.seq = ++sequence_;
    if (!rows.empty()) opts_.history(std::move(rows));
}

void engine::collect_history(slot& s, std::vector<alert_row>& rows) {
    const instance& a = s.a;
    const std::uint64_t fresh = std::min<std::uint64_t>(a.remembered - s.stored, a.history.size());
    s.stored = a.remembered;
    for (std::size_t i = a.history.size() - std::size_t(fresh); i < a.history.size(); ++i) {
        const history_entry& h = a.history[i];
        alert_row r;
        r.at = h.at;
        r.fingerprint = a.fingerprint;
        r.rule = a.rule;
        r.episode = a.episode;
        r.event = h.what;
        // A state change's row carries that state; other rows the alert's current one.
        const bool transition = h.what == "pending" || h.what == "firing" || h.what == "resolved" ||
                                h.what == "inactive";
        r.state = transition ? h.what : std::string(to_string(a.state));
        r.severity = std::string(to_string(h.level));
        r.value = h.value;
        r.detail = h.detail;
        r.labels_json = nlohmann::json(a.labels).dump();
        if (a.ack)
            r.ack_json = nlohmann::json{{"by", a.ack->by},
                                        {"comment", a.ack->comment},
                                        {"at", format_rfc3339(a.ack->at)},
                                        {"expires_at", format_rfc3339(a.ack->expires_at)}}
                             .dump();
        r.active_at = a.active_at;
        r.fired_at = a.fired_at;
        r.resolved_at = a.resolved_at;
        rows.push_back(std::move(r));
    }
}

void engine::evaluate(time_point t, std::vector<notification>& out) {
    ++round_;
    for (const auto& r : rules_.rules) {
        const auto start = std::chrono::steady_clock::now();
        evaluate_rule(r, t, out);
        const double s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        ++evaluations_[r.name];
        ++eval_count_;
        eval_sum_ += s;
        std::size_t b = 0;
        while (b < std::size(eval_buckets) && s > eval_buckets[b]) ++b;
        ++eval_seconds_[b];
    }
    // Alerts whose group had no series this time: no data (see step()).
    for (auto it = alerts_.begin(); it != alerts_.end();) {
        slot& s = it->second;
        const auto r = by_name_.find(s.a.rule);
        if (s.round != round_ && r != by_name_.end()) {
            step(s.a, *r->second, nullptr, t, [this] { return new_episode(); });
            after_step(s, *r->second, t, out);
        }
        const bool done = s.a.state == alert_state::inactive ||
                          (s.a.state == alert_state::resolved &&
                           t - s.a.resolved_at >= opts_.resolved_retention && !s.a.pending_status);
        if (done) {
            const auto g = live_.find(s.a.rule);
            if (g != live_.end()) g->second.erase(s.group_key);
            it = alerts_.erase(it);
        } else {
            ++it;
        }
    }
}

void engine::evaluate_rule(const rule& r, time_point t, std::vector<notification>& out) {
    window_history::live_figures live;
    if (opts_.store_down_seconds) live.store_down_seconds = opts_.store_down_seconds();
    auto& groups = live_[r.name];
    for (const measurement& m : history_.measure(r, live)) {
        const auto known = groups.find(m.key);
        auto it = known == groups.end() ? alerts_.end() : alerts_.find(known->second);
        if (it == alerts_.end()) {
            // Only a condition that holds starts an alert.
            instance probe;
            if (!(m.known && m.samples >= r.min_samples && levels_holding(probe, r, m.value)))
                continue;
            probe.labels = identity(r, m.group, opts_.host);
            probe.fingerprint = fingerprint_of(probe.labels);
            probe.rule = r.name;
            const std::string fp = probe.fingerprint;
            it = alerts_.find(fp);
            if (it == alerts_.end())
                it = alerts_.emplace(fp, slot{std::move(probe), 0, m.key}).first;
            it->second.group_key = m.key;
            groups[m.key] = fp;
        }
        slot& s = it->second;
        s.round = round_;
        step(s.a, r, &m, t, [this] { return new_episode(); });
        after_step(s, r, t, out);
    }
}

void engine::after_step(slot& s, const rule& r, time_point t, std::vector<notification>& out) {
    instance& a = s.a;
    if (a.ack && t >= a.ack->expires_at) {
        a.ack.reset();
        a.remember(t, "ack expired");
        std::vector<std::string> to;
        for (const auto& [name, p] : a.receivers)
            if (p.status > 0) to.push_back(name);
        emit(a, r, event_kind::unacknowledged, to, t, out);
    }
    notify(a, r, t, out);
    escalate(a, r, t, out);
}

namespace {

/// Netdata's delay: a change while the previous delay runs multiplies both delays (up to max).
void schedule(instance& a, const delay_spec& d, int status, time_point now) {
    const nanoseconds cap =
        d.max.count() > 0
            ? d.max
            : std::max(nanoseconds(std::int64_t(double(d.up.count()) * d.multiplier)),
                       nanoseconds(std::int64_t(double(d.down.count()) * d.multiplier)));
    const int previous = a.pending_status.value_or(a.notified_status);
    if (now > a.delay_up_to) {
        a.up_cur = d.up;
        a.down_cur = d.down;
    } else {
        a.up_cur =
            std::min(nanoseconds(std::int64_t(double(a.up_cur.count()) * d.multiplier)), cap);
        a.down_cur =
            std::min(nanoseconds(std::int64_t(double(a.down_cur.count()) * d.multiplier)), cap);
    }
    const nanoseconds delay = status > previous ? a.up_cur : a.down_cur;
    a.delay_up_to = now + delay;
    a.pending_status = status;
    a.pending_due = now + delay;
}

/// Counts a firing/resolved flip and updates the flapping flag (with a hysteresis band: on at
/// the threshold, off below half of it). True when the flag just turned on.
bool flap(instance& a, const rule& r, bool flipped, time_point now) {
    if (flipped) a.flips.push_back(now);
    while (!a.flips.empty() && now - a.flips.front() > r.flap_window) a.flips.pop_front();
    if (r.flap_threshold <= 0) return false;
    const int n = int(a.flips.size());
    if (!a.flapping && n >= r.flap_threshold) {
        a.flapping = true;
        a.remember(now, "flapping", std::to_string(n) + " changes");
        return true;
    }
    if (a.flapping && n * 2 < r.flap_threshold) {
        a.flapping = false;
        a.remember(now, "steady");
    }
    return false;
}

}  // namespace

void engine::notify(instance& a, const rule& r, time_point t, std::vector<notification>& out) {
    const int status = a.firing_status();
    if (status != a.pending_status.value_or(a.notified_status))
        schedule(a, r.notify_delay, status, t);
    if (a.pending_status && *a.pending_status == a.notified_status) a.pending_status.reset();
    bool flipped = false;
    if (a.pending_status && t >= a.pending_due) {
        flipped = (*a.pending_status == 0) != (a.notified_status == 0);
        a.notified_status = *a.pending_status;
        a.pending_status.reset();
    }
    const bool muted = silenced(a, t);
    if (flap(a, r, flipped, t) && !muted) emit(a, r, event_kind::flapping, r.receivers, t, out);
    std::vector<std::string> names = r.receivers;
    for (const auto& [name, p] : a.receivers)
        if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    const int want = a.notified_status;
    for (const auto& name : names) {
        const receiver_spec* spec = receiver(name);
        const bool am = spec != nullptr && spec->type == receiver_type::alertmanager;
        receiver_progress& p = a.receivers[name];
        const bool quiet = !am && (muted || a.flapping);
        if (want == 0 && p.status > 0 && !(!am && a.flapping)) {
            emit(a, r, event_kind::resolved, {name}, t, out);
        } else if (want > 0 && p.status == 0 && !quiet &&
                   std::find(r.receivers.begin(), r.receivers.end(), name) != r.receivers.end()) {
            emit(a, r, event_kind::firing, {name}, t, out);
        } else if (want > 0 && p.status > 0 && want != p.status && !quiet) {
            emit(a, r, event_kind::severity_changed, {name}, t, out, -1, severity(p.status - 1));
        } else if (want > 0 && want == p.status && !am && !quiet && !a.ack) {
            const nanoseconds every = r.repeat_interval[want - 1];
            if (every.count() > 0 && t - p.last_sent >= every)
                emit(a, r, event_kind::reminder, {name}, t, out);
        }
        if (a.receivers.count(name) != 0 && a.receivers[name].status == 0) a.receivers.erase(name);
    }
}

void engine::escalate(instance& a, const rule& r, time_point t, std::vector<notification>& out) {
    if (r.escalation.empty() || a.state != alert_state::firing || a.notified_status == 0) return;
    const auto policy =
        std::find_if(rules_.escalations.begin(), rules_.escalations.end(),
                     [&](const escalation_policy& p) { return p.name == r.escalation; });
    if (policy == rules_.escalations.end() || policy->levels.empty()) return;
    if (policy->condition == escalation_condition::unacknowledged && a.ack) return;
    if (silenced(a, t)) return;
    // Level k of loop L is due at fired_at + L * cycle + after_k. A loop starts over the last
    // level's `after` once that level is due (cycle = 2 x that `after`), `repeat` times.
    const nanoseconds cycle = 2 * policy->levels.back().after;
    if (cycle.count() > 0 && a.escalation_loop < policy->repeat &&
        t - a.fired_at >= (a.escalation_loop + 1) * cycle) {
        ++a.escalation_loop;
        a.escalation_fired = 0;
    }
    for (std::size_t k = 0; k < policy->levels.size() && k < 32; ++k) {
        const escalation_level& level = policy->levels[k];
        if ((a.escalation_fired & (1u << k)) != 0 || a.level < level.min_severity) continue;
        if (t - a.fired_at < a.escalation_loop * cycle + level.after) continue;
        a.escalation_fired |= 1u << k;
        a.escalation_step = int(k);
        a.remember(t, "escalated", "level " + std::to_string(k));
        emit(a, r, event_kind::escalated, level.receivers, t, out, int(k));
    }
}

void engine::emit(instance& a, const rule& r, event_kind e, const std::vector<std::string>& to,
                  time_point t, std::vector<notification>& out, int step,
                  std::optional<severity> previous) {
    if (to.empty()) return;
    const std::uint64_t seq = ++sequence_;
    const alert_view v = view_of(a, &r);
    std::string sent_to;
    for (const auto& name : to) {
        const receiver_spec* spec = receiver(name);
        if (spec == nullptr) continue;
        if (spec->type == receiver_type::alertmanager && !state_event(e)) continue;
        receiver_progress& p = a.receivers[name];
        if (e == event_kind::resolved) p.status = 0;
        if (e == event_kind::firing || e == event_kind::severity_changed ||
            e == event_kind::escalated)
            p.status = a.firing_status();
        p.last_sent = t;
        notification n;
        n.id = a.fingerprint + "-" + a.episode + "-" + std::to_string(seq) + "-" + name;
        n.receiver = name;
        n.event = e;
        n.sequence = seq;
        n.alert = v;
        n.previous_level = previous;
        n.escalation_step = step;
        n.created = t;
        out.push_back(std::move(n));
        sent_to += sent_to.empty() ? name : ", " + name;
    }
    if (!sent_to.empty()) a.remember(t, "sent " + std::string(to_string(e)), sent_to);
}

alert_view engine::view_of(const instance& a, const rule* r) const {
    alert_view v;
    v.fingerprint = a.fingerprint;
    v.rule = a.rule;
    v.labels = a.labels;
    v.state = a.state;
    v.level = a.level;
    v.value = a.value;
    v.episode = a.episode;
    v.active_at = a.active_at;
    v.fired_at = a.fired_at;
    v.resolved_at = a.resolved_at;
    v.ack = a.ack;
    if (r != nullptr) {
        template_vars vars;
        vars.labels = a.labels;
        vars.value = a.value;
        vars.threshold = threshold_of(*r, a.level);
        vars.samples = a.samples;
        vars.over = r->over;
        vars.severity = a.level;
        for (const auto& [k, tmpl] : r->annotations) v.annotations[k] = render_template(tmpl, vars);
    }
    return v;
}

bool engine::silenced(const instance& a, time_point t) const {
    if (silences_.empty()) return false;
    label_set l = a.labels;
    l["severity"] = std::string(to_string(a.level));
    for (const auto& s : silences_)
        if (s.mutes(l, t)) return true;
    return false;
}

const receiver_spec* engine::receiver(const std::string& name) const {
    for (const auto& r : rules_.receivers)
        if (r.name == name) return &r;
    return nullptr;
}

std::string engine::new_episode() {
    // A UUIDv7: 48 bits of Unix milliseconds, then random bits (version 7, variant 10).
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    const auto ms = std::uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                      .count());
    const std::uint64_t r1 = rng(), r2 = rng();
    const std::uint64_t fields[5] = {(ms >> 16) & 0xffffffffu, ms & 0xffff, 0x7000 | (r1 & 0xfff),
                                     0x8000 | ((r1 >> 12) & 0x3fff), r2 & 0xffffffffffffull};
    static constexpr int widths[5] = {8, 4, 4, 4, 12};
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (int f = 0; f < 5; ++f) {
        if (f > 0) out.push_back('-');
        for (int d = widths[f] - 1; d >= 0; --d) out.push_back(hex[(fields[f] >> (4 * d)) & 0xf]);
    }
    return out;
}

namespace {

nlohmann::json time_json(time_point t) {
    return t == time_point{} ? nlohmann::json(nullptr) : nlohmann::json(format_rfc3339(t));
}

nlohmann::json ack_json(const std::optional<ack_info>& ack) {
    if (!ack) return nullptr;
    return {{"by", ack->by},
            {"comment", ack->comment},
            {"at", format_rfc3339(ack->at)},
            {"expires_at", format_rfc3339(ack->expires_at)}};
}

}  // namespace

nlohmann::json engine::entry_json(const instance& a, time_point t) const {
    const auto r = by_name_.find(a.rule);
    const alert_view v = view_of(a, r == by_name_.end() ? nullptr : r->second);
    return {{"fingerprint", a.fingerprint},
            {"rule", a.rule},
            {"labels", a.labels},
            {"annotations", v.annotations},
            {"state", to_string(a.state)},
            {"severity", to_string(a.level)},
            {"value", a.value},
            {"samples", a.samples},
            {"episode", a.episode},
            {"active_at", time_json(a.active_at)},
            {"fired_at", time_json(a.fired_at)},
            {"resolved_at", time_json(a.resolved_at)},
            {"ack", ack_json(a.ack)},
            {"silenced", silenced(a, t)},
            {"flapping", a.flapping},
            {"escalation_step", a.escalation_step}};
}

nlohmann::json engine::alerts_json(const std::string& state, const std::string& severity) const {
    std::lock_guard<std::mutex> lock(mu_);
    const time_point t = now();
    std::vector<const instance*> sorted;
    for (const auto& [fp, s] : alerts_) {
        if (!state.empty() && to_string(s.a.state) != state) continue;
        if (!severity.empty() && to_string(s.a.level) != severity) continue;
        sorted.push_back(&s.a);
    }
    std::sort(sorted.begin(), sorted.end(), [](const instance* x, const instance* y) {
        return std::tie(x->rule, x->fingerprint) < std::tie(y->rule, y->fingerprint);
    });
    nlohmann::json list = nlohmann::json::array();
    for (const instance* a : sorted) list.push_back(entry_json(*a, t));
    return {{"alerts", std::move(list)}};
}

std::optional<nlohmann::json> engine::alert_json(const std::string& fingerprint) const {
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = alerts_.find(fingerprint);
    if (it == alerts_.end()) return std::nullopt;
    nlohmann::json a = entry_json(it->second.a, now());
    nlohmann::json h = nlohmann::json::array();
    for (const auto& e : it->second.a.history)
        h.push_back({{"at", format_rfc3339(e.at)},
                     {"what", e.what},
                     {"severity", to_string(e.level)},
                     {"value", e.value},
                     {"detail", e.detail}});
    a["history"] = std::move(h);
    return a;
}

ack_result engine::ack(const std::string& fingerprint, const std::string& by,
                       const std::string& comment, nanoseconds ttl, nlohmann::json* out) {
    std::vector<notification> sent;
    {
        std::lock_guard<std::mutex> lock(mu_);
        const auto it = alerts_.find(fingerprint);
        if (it == alerts_.end()) return ack_result::not_found;
        instance& a = it->second.a;
        if (a.state != alert_state::firing) return ack_result::not_firing;
        const time_point t = now();
        a.ack = ack_info{by, comment, t, t + ttl};
        a.remember(t, "acknowledged", by + ": " + comment);
        ++acks_;
        if (out != nullptr) *out = ack_json(a.ack);
        const auto r = by_name_.find(a.rule);
        if (r != by_name_.end()) {
            std::vector<std::string> to;
            for (const auto& [name, p] : a.receivers)
                if (p.status > 0) to.push_back(name);
            emit(a, *r->second, event_kind::acknowledged, to, t, sent);
        }
        commit(sent, t);
    }
    return ack_result::ok;
}

ack_result engine::unack(const std::string& fingerprint, const std::string& by) {
    std::vector<notification> sent;
    {
        std::lock_guard<std::mutex> lock(mu_);
        const auto it = alerts_.find(fingerprint);
        if (it == alerts_.end()) return ack_result::not_found;
        instance& a = it->second.a;
        if (!a.ack) return ack_result::not_firing;
        const time_point t = now();
        a.ack.reset();
        a.remember(t, "unacknowledged", by);
        const auto r = by_name_.find(a.rule);
        if (r != by_name_.end()) {
            std::vector<std::string> to;
            for (const auto& [name, p] : a.receivers)
                if (p.status > 0) to.push_back(name);
            emit(a, *r->second, event_kind::unacknowledged, to, t, sent);
        }
        commit(sent, t);
    }
    return ack_result::ok;
}

std::string engine::add_silence(const nlohmann::json& body, const std::string& by) {
    std::lock_guard<std::mutex> lock(mu_);
    const time_point t = now();
    silence s = silence_from_json(body, t);
    if (s.created_by.empty()) s.created_by = by;
    // Expired silences are kept a day for the listing, then forgotten.
    silences_.erase(
        std::remove_if(silences_.begin(), silences_.end(),
                       [&](const silence& x) { return t - x.ends_at > std::chrono::hours(24); }),
        silences_.end());
    s.id = new_episode();
    silences_.push_back(s);
    save(t);
    record_silence(s, "created by " + by, t);
    return s.id;
}

void engine::record_silence(const silence& s, const std::string& what, time_point t) {
    if (!opts_.history) return;
    alert_row r;
    r.at = t;
    r.seq = ++sequence_;
    r.event = "silence";
    r.detail = what;
    r.labels_json = to_json(s, t).dump();  // the silence itself: id, matchers, times, comment
    opts_.history({std::move(r)});
}

nlohmann::json engine::silences_json() const {
    std::lock_guard<std::mutex> lock(mu_);
    nlohmann::json list = nlohmann::json::array();
    for (const auto& s : silences_) list.push_back(to_json(s, now()));
    return list;
}

bool engine::expire_silence(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    const time_point t = now();
    for (auto& s : silences_)
        if (s.id == id && s.ends_at > t) {
            s.ends_at = t;
            save(t);
            record_silence(s, "expired", t);
            return true;
        }
    return false;
}

std::size_t engine::size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return alerts_.size();
}

void engine::render_metrics(std::string& out) const {
    namespace ex = exposition;
    std::lock_guard<std::mutex> lock(mu_);
    const time_point t = now();
    std::uint64_t counts[4][severity_count] = {};
    std::uint64_t flapping = 0;
    for (const auto& [fp, s] : alerts_) {
        ++counts[int(s.a.state)][int(s.a.level)];
        flapping += s.a.flapping ? 1 : 0;
    }
    ex::family(out, "plugmon_alerts", "gauge", "Alerts by state and severity.");
    for (const alert_state st : {alert_state::pending, alert_state::firing, alert_state::resolved})
        for (int sv = 0; sv < severity_count; ++sv)
            ex::sample(out, "plugmon_alerts",
                       {{"state", to_string(st)}, {"severity", to_string(severity(sv))}},
                       counts[int(st)][sv]);
    ex::family(out, "plugmon_alerts_flapping", "gauge", "Alerts flagged as flapping.");
    ex::sample(out, "plugmon_alerts_flapping", {}, flapping);
    ex::family(out, "plugmon_alert_rule_evaluations_total", "counter",
               "Evaluations of each alert rule (one per closed window).");
    for (const auto& r : rules_.rules) {
        const auto it = evaluations_.find(r.name);
        ex::sample(out, "plugmon_alert_rule_evaluations_total", {{"rule", r.name}},
                   it == evaluations_.end() ? std::uint64_t(0) : it->second);
    }
    ex::family(out, "plugmon_alert_rule_evaluation_duration_seconds", "histogram",
               "Time to evaluate one rule over one window.");
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b <= std::size(eval_buckets); ++b) {
        cumulative += eval_seconds_[b];
        char le[32];
        if (b < std::size(eval_buckets))
            std::snprintf(le, sizeof le, "%g", eval_buckets[b]);
        else
            std::snprintf(le, sizeof le, "+Inf");
        ex::sample(out, "plugmon_alert_rule_evaluation_duration_seconds_bucket", {{"le", le}},
                   cumulative);
    }
    ex::sample(out, "plugmon_alert_rule_evaluation_duration_seconds_sum", {}, eval_sum_);
    ex::sample(out, "plugmon_alert_rule_evaluation_duration_seconds_count", {}, eval_count_);
    ex::family(out, "plugmon_alert_config_last_reload_successful", "gauge",
               "1 when the last reload of the alert rules succeeded.");
    ex::sample(out, "plugmon_alert_config_last_reload_successful", {}, reload_ok_ ? 1 : 0);
    std::uint64_t by_state[3] = {};
    for (const auto& s : silences_) {
        const auto st = s.state(t);
        ++by_state[st == "active" ? 0 : st == "pending" ? 1 : 2];
    }
    ex::family(out, "plugmon_alert_silences", "gauge", "Silences by state.");
    const char* names[] = {"active", "pending", "expired"};
    for (int i = 0; i < 3; ++i)
        ex::sample(out, "plugmon_alert_silences", {{"state", names[i]}}, by_state[i]);
    ex::family(out, "plugmon_alert_acks_total", "counter", "Alerts acknowledged.");
    ex::sample(out, "plugmon_alert_acks_total", {}, acks_);
    ex::family(out, "plugmon_alert_state_restored_instances", "gauge",
               "Alerts restored from the state file at start.");
    ex::sample(out, "plugmon_alert_state_restored_instances", {}, restored_);
    ex::family(out, "plugmon_alert_notifications_unqueued_total", "counter",
               "Notification batches the outbox refused (disk errors).");
    ex::sample(out, "plugmon_alert_notifications_unqueued_total", {}, delivery_failures_);
}

}  // namespace plugmon::agent::alert
