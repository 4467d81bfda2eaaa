// Building the notifiers' JSON bodies from notifications (see payloads.hpp for the shapes).
#include "alert/notify/payloads.hpp"

#include "common/rfc3339.hpp"

#include <algorithm>
#include <charconv>
#include <set>
#include <stdexcept>

namespace plugmon::agent::alert::notify {

using nlohmann::json;

namespace {

// Alertmanager's "unknown endsAt" for a firing alert in a webhook message.
constexpr const char* zero_time = "0001-01-01T00:00:00Z";

std::string format_value(double v) {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
}

json to_json(const label_set& labels) {
    json j = json::object();
    for (const auto& [k, v] : labels) j[k] = v;
    return j;
}

// The pairs present with the same value in every set.
label_set common_of(const std::vector<label_set>& sets) {
    if (sets.empty()) return {};
    label_set common = sets.front();
    for (std::size_t i = 1; i < sets.size(); ++i) {
        for (auto it = common.begin(); it != common.end();) {
            auto f = sets[i].find(it->first);
            it = (f == sets[i].end() || f->second != it->second) ? common.erase(it) : ++it;
        }
    }
    return common;
}

std::string time_or_zero(time_point t) { return t == time_point{} ? zero_time : format_rfc3339(t); }

json event_json(const notification& n) {
    json e = {{"event_id", n.id},
              {"event", to_string(n.event)},
              {"fingerprint", n.alert.fingerprint},
              {"episode", n.alert.episode},
              {"sequence", n.sequence},
              {"level", to_string(n.alert.level)},
              {"previous_level", nullptr},
              {"ack", nullptr},
              {"escalation_step", nullptr}};
    if (n.previous_level) e["previous_level"] = to_string(*n.previous_level);
    if (n.alert.ack)
        e["ack"] = {{"by", n.alert.ack->by},
                    {"comment", n.alert.ack->comment},
                    {"at", format_rfc3339(n.alert.ack->at)},
                    {"expires_at", format_rfc3339(n.alert.ack->expires_at)}};
    if (n.escalation_step >= 0) e["escalation_step"] = n.escalation_step;
    return e;
}

json webhook_alert(const notification& n, const payload_context& ctx) {
    bool resolved = is_resolved(n);
    time_point starts = n.alert.fired_at != time_point{} ? n.alert.fired_at : n.alert.active_at;
    time_point ends = resolved
                          ? (n.alert.resolved_at != time_point{} ? n.alert.resolved_at : n.created)
                          : time_point{};
    return {{"status", resolved ? "resolved" : "firing"},
            {"labels", to_json(labels_with_severity(n.alert, n.alert.level))},
            {"annotations", to_json(annotations_with_value(n.alert))},
            {"startsAt", time_or_zero(starts)},
            {"endsAt", time_or_zero(ends)},
            {"generatorURL", generator_url(ctx.external_url, n.alert.fingerprint)},
            {"fingerprint", n.alert.fingerprint}};
}

std::string alert_line(const notification& n) {
    std::string line = "[" + std::string(to_string(n.alert.level)) + "] ";
    auto name = n.alert.labels.find("alertname");
    line += name != n.alert.labels.end() ? name->second : n.alert.rule;
    for (const auto& [k, v] : n.alert.labels)
        if (k != "alertname") line += " " + k + "=" + v;
    auto summary = n.alert.annotations.find("summary");
    if (summary != n.alert.annotations.end()) line += " — " + summary->second;
    return line;
}

json slack_blocks(const std::string& text, const std::string& link) {
    constexpr std::size_t section_limit = 3000;  // Slack's limit for a section's text
    std::string shown =
        text.size() > section_limit ? text.substr(0, section_limit - 3) + "..." : text;
    return json::array(
        {{{"type", "section"}, {"text", {{"type", "mrkdwn"}, {"text", shown}}}},
         {{"type", "context"},
          {"elements", json::array({{{"type", "mrkdwn"}, {"text", "<" + link + "|plugmon>"}}})}}});
}

}  // namespace

std::string generator_url(std::string_view external_url, std::string_view fingerprint) {
    return std::string(external_url) + "/api/v1/alerts/" + std::string(fingerprint);
}

label_set labels_with_severity(const alert_view& a, severity level) {
    label_set labels = a.labels;
    if (labels.find("alertname") == labels.end() && !a.rule.empty()) labels["alertname"] = a.rule;
    labels["severity"] = std::string(to_string(level));
    return labels;
}

label_set annotations_with_value(const alert_view& a) {
    label_set annotations = a.annotations;
    annotations["value"] = format_value(a.value);
    return annotations;
}

json alertmanager_body(const std::vector<am_alert>& alerts) {
    json body = json::array();
    for (const auto& a : alerts)
        body.push_back({{"labels", to_json(a.labels)},
                        {"annotations", to_json(a.annotations)},
                        {"startsAt", format_rfc3339(a.starts_at)},
                        {"endsAt", format_rfc3339(a.ends_at)},
                        {"generatorURL", a.generator_url}});
    return body;
}

bool is_resolved(const notification& n) {
    return n.event == event_kind::resolved || n.alert.state == alert_state::resolved;
}

json webhook_message(std::string_view receiver, const std::vector<notification>& events,
                     const payload_context& ctx, std::size_t max_alerts) {
    if (events.empty()) throw std::invalid_argument("webhook_message: no events");
    std::vector<label_set> labels, annotations;
    json alerts = json::array(), plugmon_events = json::array();
    bool all_resolved = true;
    for (const auto& n : events) {
        labels.push_back(labels_with_severity(n.alert, n.alert.level));
        annotations.push_back(annotations_with_value(n.alert));
        all_resolved = all_resolved && is_resolved(n);
        if (alerts.size() < max_alerts) alerts.push_back(webhook_alert(n, ctx));
        plugmon_events.push_back(event_json(n));
    }
    label_set common = common_of(labels), group;
    if (auto it = common.find("alertname"); it != common.end()) group.insert(*it);
    std::string kind(to_string(events.front().event));
    json plugmon = {{"event", kind}, {"events", plugmon_events}};
    if (events.size() == 1) {
        plugmon["event_id"] = events.front().id;
        plugmon["episode"] = events.front().alert.episode;
        plugmon["sequence"] = events.front().sequence;
    }
    std::string group_key = std::string(receiver) + ":" + kind;
    for (const auto& [k, v] : group) group_key += ":{" + k + "=\"" + v + "\"}";
    return {{"version", "4"},
            {"groupKey", group_key},
            {"truncatedAlerts", events.size() - alerts.size()},
            {"status", all_resolved ? "resolved" : "firing"},
            {"receiver", receiver},
            {"groupLabels", to_json(group)},
            {"commonLabels", to_json(common)},
            {"commonAnnotations", to_json(common_of(annotations))},
            {"externalURL", ctx.external_url},
            {"alerts", alerts},
            {"plugmon", plugmon}};
}

json slack_message(const std::vector<notification>& events, const payload_context& ctx) {
    if (events.empty()) throw std::invalid_argument("slack_message: no events");
    std::string kind(to_string(events.front().event));
    std::string head = "[" + kind;
    std::transform(head.begin(), head.end(), head.begin(),
                   [](unsigned char c) { return char(std::toupper(c)); });
    head += events.size() > 1 ? ":" + std::to_string(events.size()) + "] " : "] ";
    head += alert_line(events.front());
    std::string body;
    for (const auto& n : events) body += "• " + alert_line(n) + "\n";
    return {{"text", head}, {"blocks", slack_blocks(body, ctx.external_url + "/api/v1/alerts")}};
}

storm_summary summarize(const std::vector<notification>& events) {
    storm_summary s;
    std::set<std::string> fingerprints;
    for (const auto& n : events) {
        ++s.by_event[std::string(to_string(n.event))];
        if (n.event == event_kind::firing) ++s.firing;
        if (n.event == event_kind::resolved) ++s.resolved;
        fingerprints.insert(n.alert.fingerprint);
        s.event_ids.push_back(n.id);
    }
    s.total = events.size();
    s.fingerprints.assign(fingerprints.begin(), fingerprints.end());
    return s;
}

std::string summary_text(const storm_summary& s, std::string_view external_url) {
    std::string text =
        std::to_string(s.firing) + " firing, " + std::to_string(s.resolved) + " resolved";
    for (const auto& [kind, count] : s.by_event)
        if (kind != "firing" && kind != "resolved")
            text += ", " + std::to_string(count) + " " + kind;
    text += " (" + std::to_string(s.total) + " events coalesced, " +
            std::to_string(s.fingerprints.size()) + " alerts) — see " + std::string(external_url) +
            "/api/v1/alerts";
    return text;
}

json summary_webhook(std::string_view receiver, const storm_summary& s,
                     const payload_context& ctx) {
    json counts = json::object();
    for (const auto& [kind, count] : s.by_event) counts[kind] = count;
    json summary = {{"counts", counts},
                    {"firing", s.firing},
                    {"resolved", s.resolved},
                    {"total", s.total},
                    {"fingerprints", s.fingerprints},
                    {"event_ids", s.event_ids},
                    {"text", summary_text(s, ctx.external_url)}};
    return {{"version", "4"},
            {"groupKey", std::string(receiver) + ":summary"},
            {"truncatedAlerts", s.total},
            {"status", s.firing > 0 ? "firing" : "resolved"},
            {"receiver", receiver},
            {"groupLabels", json::object()},
            {"commonLabels", json::object()},
            {"commonAnnotations", json::object()},
            {"externalURL", ctx.external_url},
            {"alerts", json::array()},
            {"plugmon", {{"event", "summary"}, {"summary", summary}}}};
}

json summary_slack(const storm_summary& s, const payload_context& ctx) {
    std::string text = summary_text(s, ctx.external_url);
    std::string body = text + "\nAlerts: ";
    for (std::size_t i = 0; i < s.fingerprints.size() && i < 50; ++i)
        body += (i ? ", " : "") + s.fingerprints[i];
    if (s.fingerprints.size() > 50) body += ", …";
    return {{"text", text}, {"blocks", slack_blocks(body, ctx.external_url + "/api/v1/alerts")}};
}

}  // namespace plugmon::agent::alert::notify
