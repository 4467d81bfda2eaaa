// One rules file: [defaults], [[receiver]], [[escalation]] and [[rule]] tables into the model.
#include "alert/rules/parse.hpp"

#include <algorithm>
#include <cctype>

#include "alert/rules/fields.hpp"
#include "alert/rules/rules.hpp"
#include "alert/rules/thresholds.hpp"

namespace plugmon::agent::alert::detail {

namespace {

using std::chrono::hours;
using std::chrono::seconds;

constexpr nanoseconds week = hours(24 * 7);

bool is_identifier(std::string_view s) {
    if (s.empty() || std::isdigit(static_cast<unsigned char>(s.front()))) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
    });
}

/// Receiver and policy names: letters, digits, '_', '-', '.'.
bool is_plain_name(std::string_view s) {
    return !s.empty() && s.size() <= 128 && std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
    });
}

bool counts_calls(rule_kind k) {
    return k == rule_kind::error_ratio || k == rule_kind::latency_quantile ||
           k == rule_kind::slow_rate || k == rule_kind::cpu_rate;
}

/// Names every receiver of `k` as a reference to resolve later.
void note_receivers(const fields& f, std::string_view k, const std::vector<std::string>& names) {
    for (const auto& n : names) {
        const toml::node* node = f.get(k);
        const int line = int((node ? node->source() : f.table().source()).begin.line);
        f.ctx().refs().push_back({f.ctx().file(), line, f.key(k), n, false});
    }
}

void read_repeat(const fields& f, rule& r) {
    const toml::table* t = f.sub_table("repeat_interval");
    if (t == nullptr) return;
    fields rf(f.ctx(), *t, f.key("repeat_interval"), {"info", "warning", "critical"});
    for (int s = 0; s < severity_count; ++s)
        if (auto d = rf.duration(to_string(severity(s)), nanoseconds(0), week))
            r.repeat_interval[s] = *d;
}

void read_delay(const fields& f, rule& r) {
    const toml::table* t = f.sub_table("notify_delay");
    if (t == nullptr) return;
    fields df(f.ctx(), *t, f.key("notify_delay"), {"up", "down", "multiplier", "max"});
    if (auto d = df.duration("up", nanoseconds(0), week)) r.notify_delay.up = *d;
    if (auto d = df.duration("down", nanoseconds(0), week)) r.notify_delay.down = *d;
    if (auto d = df.duration("max", nanoseconds(0), week)) r.notify_delay.max = *d;
    if (auto m = df.number("multiplier")) {
        if (*m < 1 || *m > 100)
            df.fail("multiplier", format_number(*m) + " is out of range (1..100)");
        else
            r.notify_delay.multiplier = *m;
    }
    const auto& d = r.notify_delay;
    if (d.max.count() != 0 && (d.max < d.up || d.max < d.down))
        df.fail("max", "is shorter than up or down");
}

/// The keys [defaults] and [[rule]] share: what a rule inherits when it does not set them.
void read_shared(const fields& f, rule& r) {
    if (auto v = f.strings("receivers")) {
        note_receivers(f, "receivers", *v);
        r.receivers = std::move(*v);
    }
    read_repeat(f, r);
    read_delay(f, r);
    if (auto d = f.duration("severity_down_delay", nanoseconds(0), week))
        r.severity_down_delay = *d;
    if (auto d = f.duration("for", nanoseconds(0), week)) r.for_ = *d;
    if (auto d = f.duration("keep_firing_for", nanoseconds(0), week)) r.keep_firing_for = *d;
    if (auto d = f.duration("over", seconds(1), week)) r.over = *d;
    if (auto n = f.integer("min_samples", 0, std::int64_t(1) << 40))
        r.min_samples = std::uint64_t(*n);
    if (auto s = f.string("on_no_data")) {
        if (*s == "keep")
            r.on_no_data = no_data_policy::keep;
        else if (*s == "resolve")
            r.on_no_data = no_data_policy::resolve;
        else if (*s == "alert")
            r.on_no_data = no_data_policy::alert;
        else
            f.fail("on_no_data", agent::quoted(*s) + " is not one of keep, resolve, alert");
    }
}

/// select and group_by: only labels the kind's series carry.
void read_selection(const fields& f, std::optional<rule_kind> kind, rule& r) {
    const auto has = [&](const std::string& label) {
        const auto& known = labels_of(*kind);
        return std::find(known.begin(), known.end(), label) != known.end();
    };
    const auto offered = [&] {
        std::string s;
        for (const auto& l : labels_of(*kind)) s += (s.empty() ? "" : ", ") + l;
        return s.empty() ? std::string("none") : s;
    };
    if (auto sel = f.string_table("select")) {
        for (const auto& [label, glob] : *sel)
            if (kind && !has(label))
                f.fail("select", "label " + agent::quoted(label) + " is not one of kind " +
                                     std::string(to_string(*kind)) + "'s labels (" + offered() +
                                     ")");
        r.select = std::move(*sel);
    }
    if (auto g = f.strings("group_by")) {
        for (const auto& label : *g)
            if (kind && !has(label))
                f.fail("group_by", "label " + agent::quoted(label) + " is not one of kind " +
                                       std::string(to_string(*kind)) + "'s labels (" + offered() +
                                       ")");
        r.group_by = std::move(*g);
    }
}

/// [rule.labels] and [rule.annotations]: names are label names; annotations are templates.
void read_labels(const fields& f, rule& r) {
    if (auto labels = f.string_table("labels")) {
        for (const auto& [name, value] : *labels) {
            if (!is_identifier(name) || name.starts_with("__"))
                f.fail("labels",
                       agent::quoted(name) + " is not a label name ([A-Za-z_][A-Za-z0-9_]*)");
            else if (name == "alertname" || name == "severity" || name == "host")
                f.fail("labels", agent::quoted(name) + " is set by the agent");
            else if (std::find(r.group_by.begin(), r.group_by.end(), name) != r.group_by.end())
                f.fail("labels", agent::quoted(name) + " is also a group_by label");
        }
        r.labels = std::move(*labels);
    }
    if (auto notes = f.string_table("annotations")) {
        const toml::table& t = *f.get("annotations")->as_table();
        for (const auto& [name, text] : *notes)
            if (auto problem = check_template(text))
                f.ctx().error(t.get(name)->source(), f.key("annotations." + name),
                              "template error: " + *problem);
        r.annotations = std::move(*notes);
    }
}

/// Per-kind keys and defaults: quantile, min_samples, watchdog severity, store_down's level.
void read_kind_specifics(const fields& f, std::optional<rule_kind> kind, const rule& base,
                         rule& r) {
    if (auto q = f.number("quantile")) {
        if (kind && *kind != rule_kind::latency_quantile)
            f.fail("quantile", "only latency_quantile rules have a quantile");
        else if (!(*q > 0 && *q < 1))
            f.fail("quantile", format_number(*q) + " is not strictly between 0 and 1");
        else
            r.quantile = *q;
    }
    if (!kind) return;
    if (!counts_calls(*kind)) {
        if (f.get("min_samples") != nullptr)
            f.fail("min_samples", "kind " + std::string(to_string(*kind)) +
                                      " has no call samples (only error_ratio, "
                                      "latency_quantile, slow_rate, cpu_rate)");
        r.min_samples = 0;
    } else if (f.get("min_samples") == nullptr) {
        r.min_samples = base.min_samples;
    }
    const auto sev = f.string("severity");
    if (*kind == rule_kind::watchdog) {
        if (f.get("levels") != nullptr)
            f.fail("levels", "a watchdog always fires: give `severity` instead of levels");
        auto level = severity::info;
        if (sev) {
            if (auto s = severity_from(*sev))
                level = *s;
            else
                f.fail("severity", agent::quoted(*sev) + " is not one of info, warning, critical");
        }
        r.levels[int(level)] = level_spec{0.0, std::nullopt, std::nullopt, std::nullopt};
        return;
    }
    if (f.get("severity") != nullptr)
        f.fail("severity", "only a watchdog has a fixed severity; other kinds use levels");
    const bool any = std::any_of(std::begin(r.levels), std::end(r.levels),
                                 [](const auto& l) { return l.has_value(); });
    if (any || f.get("levels") != nullptr) return;  // a bad level was reported already
    if (*kind == rule_kind::store_down)
        r.levels[int(severity::critical)] =
            level_spec{0.0, std::nullopt, std::nullopt, std::nullopt};
    else
        f.missing("levels");
}

const std::vector<std::string_view> rule_keys = {"name",
                                                 "kind",
                                                 "select",
                                                 "group_by",
                                                 "over",
                                                 "min_samples",
                                                 "for",
                                                 "keep_firing_for",
                                                 "quantile",
                                                 "receivers",
                                                 "escalation",
                                                 "on_no_data",
                                                 "no_data_after",
                                                 "repeat_interval",
                                                 "severity_down_delay",
                                                 "notify_delay",
                                                 "flap_threshold",
                                                 "flap_window",
                                                 "levels",
                                                 "labels",
                                                 "annotations",
                                                 "severity"};

rule read_rule(context& c, const toml::table& t, const rule& base) {
    fields f(c, t, "rule", rule_keys);
    rule r = base;
    r.file = c.file();
    r.line = f.line();
    if (auto name = f.string("name")) {
        if (!is_identifier(*name))
            f.fail("name", agent::quoted(*name) + " is not an alertname ([A-Za-z_][A-Za-z0-9_]*)");
        r.name = std::move(*name);
    } else if (f.get("name") == nullptr) {
        f.missing("name");
    }
    std::optional<rule_kind> kind;
    if (auto k = f.string("kind")) {
        kind = rule_kind_from(*k);
        if (!kind) f.fail("kind", agent::quoted(*k) + " is not a rule kind (see rules.hpp)");
    } else if (f.get("kind") == nullptr) {
        f.missing("kind");
    }
    if (kind) r.kind = *kind;
    read_shared(f, r);
    read_selection(f, kind, r);
    read_levels(f, kind, r);
    read_kind_specifics(f, kind, base, r);
    read_labels(f, r);
    if (auto e = f.string("escalation")) {
        const auto* node = f.get("escalation");
        c.refs().push_back({c.file(), int(node->source().begin.line), "rule.escalation", *e, true});
        r.escalation = std::move(*e);
    }
    if (auto d = f.duration("no_data_after", nanoseconds(0), week)) r.no_data_after = *d;
    if (auto d = f.duration("flap_window", seconds(10), week)) r.flap_window = *d;
    if (auto n = f.integer("flap_threshold", 2, 10000)) r.flap_threshold = int(*n);
    return r;
}

const std::vector<std::string_view> receiver_keys = {"name",
                                                     "type",
                                                     "url",
                                                     "secret_file",
                                                     "bearer_token_file",
                                                     "headers",
                                                     "timeout",
                                                     "max_notifications_per_minute",
                                                     "resend_interval",
                                                     "resolved_resend_for",
                                                     "max_event_age"};

void read_receiver_options(const fields& f, receiver_spec& r) {
    if (auto h = f.string_table("headers")) {
        for (const auto& [name, value] : *h) {
            const bool token = std::all_of(name.begin(), name.end(), [](char ch) {
                return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_';
            });
            if (name.empty() || !token)
                f.fail("headers", agent::quoted(name) + " is not an HTTP header name");
            if (value.find_first_of("\r\n") != std::string::npos)
                f.fail("headers", "the value of " + agent::quoted(name) + " holds a line break");
        }
        r.headers = std::move(*h);
    }
    if (auto d = f.duration("timeout", std::chrono::milliseconds(100), std::chrono::minutes(5)))
        r.timeout = *d;
    if (auto n = f.integer("max_notifications_per_minute", 1, 100000))
        r.max_notifications_per_minute = int(*n);
    if (auto d = f.duration("resend_interval", seconds(10), hours(24))) r.resend_interval = *d;
    if (auto d = f.duration("resolved_resend_for", nanoseconds(0), hours(24 * 7)))
        r.resolved_resend_for = *d;
    if (auto d = f.duration("max_event_age", std::chrono::minutes(1), hours(24 * 30)))
        r.max_event_age = *d;
    if (r.type != receiver_type::alertmanager) {
        for (const auto k : {"resend_interval", "resolved_resend_for"})
            if (f.get(k) != nullptr) f.fail(k, "applies to alertmanager receivers only");
    }
    if (r.type != receiver_type::webhook && f.get("secret_file") != nullptr)
        f.fail("secret_file", "only webhook receivers sign their bodies");
}

receiver_spec read_receiver(context& c, const toml::table& t) {
    fields f(c, t, "receiver", receiver_keys);
    receiver_spec r;
    r.file = c.file();
    r.line = f.line();
    if (auto name = f.string("name")) {
        if (!is_plain_name(*name))
            f.fail("name",
                   agent::quoted(*name) + " is not a name (letters, digits, '_', '-', '.')");
        r.name = std::move(*name);
    } else if (f.get("name") == nullptr) {
        f.missing("name");
    }
    if (auto type = f.string("type")) {
        if (*type == "alertmanager")
            r.type = receiver_type::alertmanager;
        else if (*type == "webhook")
            r.type = receiver_type::webhook;
        else if (*type == "slack")
            r.type = receiver_type::slack;
        else
            f.fail("type", agent::quoted(*type) + " is not one of alertmanager, webhook, slack");
    } else if (f.get("type") == nullptr) {
        f.missing("type");
    }
    if (auto url = f.string("url")) {
        const auto scheme = url->find("://");
        const bool http = url->starts_with("http://") || url->starts_with("https://");
        if (!http || url->size() <= scheme + 3)
            f.fail("url", agent::quoted(*url) + " is not an http:// or https:// URL");
        r.url = std::move(*url);
    } else if (f.get("url") == nullptr) {
        f.missing("url");
    }
    if (auto s = f.string("secret_file")) r.secret_file = std::move(*s);
    if (auto s = f.string("bearer_token_file")) r.bearer_token_file = std::move(*s);
    read_receiver_options(f, r);
    return r;
}

escalation_level read_escalation_level(context& c, const toml::table& t) {
    fields f(c, t, "escalation.level", {"after", "receivers", "min_severity"});
    escalation_level l;
    if (auto d = f.duration("after", nanoseconds(0), week)) l.after = *d;
    if (auto v = f.strings("receivers")) {
        if (v->empty()) f.fail("receivers", "is empty");
        note_receivers(f, "receivers", *v);
        l.receivers = std::move(*v);
    } else if (f.get("receivers") == nullptr) {
        f.missing("receivers");
    }
    if (auto s = f.string("min_severity")) {
        if (auto sev = severity_from(*s))
            l.min_severity = *sev;
        else
            f.fail("min_severity", agent::quoted(*s) + " is not one of info, warning, critical");
    }
    return l;
}

escalation_policy read_escalation(context& c, const toml::table& t) {
    fields f(c, t, "escalation", {"name", "condition", "repeat", "level"});
    escalation_policy p;
    p.file = c.file();
    p.line = f.line();
    if (auto name = f.string("name")) {
        if (!is_plain_name(*name))
            f.fail("name",
                   agent::quoted(*name) + " is not a name (letters, digits, '_', '-', '.')");
        p.name = std::move(*name);
    } else if (f.get("name") == nullptr) {
        f.missing("name");
    }
    if (auto cond = f.string("condition")) {
        if (*cond == "unacknowledged")
            p.condition = escalation_condition::unacknowledged;
        else if (*cond == "unresolved")
            p.condition = escalation_condition::unresolved;
        else
            f.fail("condition", agent::quoted(*cond) + " is not one of unacknowledged, unresolved");
    }
    if (auto n = f.integer("repeat", 0, 5)) p.repeat = int(*n);
    const toml::node* levels = f.get("level");
    if (levels == nullptr) {
        f.missing("level");
    } else if (!levels->is_array_of_tables()) {
        f.fail("level", "expected [[escalation.level]] tables, got " + toml_type_name(*levels));
    } else {
        for (const auto& lt : *levels->as_array()) {
            p.levels.push_back(read_escalation_level(c, *lt.as_table()));
            const auto n = p.levels.size();
            if (n > 1 && p.levels[n - 1].after < p.levels[n - 2].after)
                c.error(lt.source(), "escalation.level.after",
                        "comes before the previous level's (levels are in order of `after`)");
        }
    }
    return p;
}

/// Calls `each` with every table of the array-of-tables `key`; reports any other shape.
template <class Each>
void each_table(context& c, const toml::table& top, std::string_view key, Each each) {
    const toml::node* n = top.get(key);
    if (n == nullptr) return;
    if (!n->is_array_of_tables()) {
        c.error(n->source(), key,
                "expected [[" + std::string(key) + "]] tables, got " + toml_type_name(*n));
        return;
    }
    for (const auto& t : *n->as_array()) each(*t.as_table());
}

}  // namespace

parsed_file parse_file(std::string_view text, const std::string& file) {
    context c(file);
    parsed_file out;
    toml::table top;
    try {
        top = toml::parse(text, file);
    } catch (const toml::parse_error& e) {
        c.error(e.source(), "", "TOML syntax error: " + std::string(e.description()));
        out.errors = std::move(c.errors());
        return out;
    }
    const fields tf(c, top, "", {"defaults", "receiver", "escalation", "rule"});
    rule base;
    if (const toml::table* d = tf.sub_table("defaults")) {
        const fields df(c, *d, "defaults",
                        {"receivers", "repeat_interval", "notify_delay", "severity_down_delay",
                         "for", "keep_firing_for", "over", "min_samples", "on_no_data"});
        read_shared(df, base);
    }
    base.file.clear();
    each_table(c, top, "receiver",
               [&](const toml::table& t) { out.set.receivers.push_back(read_receiver(c, t)); });
    each_table(c, top, "escalation",
               [&](const toml::table& t) { out.set.escalations.push_back(read_escalation(c, t)); });
    each_table(c, top, "rule",
               [&](const toml::table& t) { out.set.rules.push_back(read_rule(c, t, base)); });
    out.errors = std::move(c.errors());
    out.refs = std::move(c.refs());
    std::stable_sort(out.errors.begin(), out.errors.end(),
                     [](const diag& a, const diag& b) { return a.line < b.line; });
    return out;
}

}  // namespace plugmon::agent::alert::detail
