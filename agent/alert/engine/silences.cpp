// Silences: Alertmanager's matcher schema, checked when an alert would notify.
#include "alert/engine/silences.hpp"

#include "common/rfc3339.hpp"

#include <stdexcept>

namespace plugmon::agent::alert {

bool matcher::matches(const label_set& labels) const {
    const auto it = labels.find(name);
    const std::string& v = it == labels.end() ? std::string() : it->second;
    const bool hit = is_regex ? std::regex_match(v, *re) : v == value;
    return hit == is_equal;
}

std::string_view silence::state(time_point now) const {
    if (now < starts_at) return "pending";
    if (now >= ends_at) return "expired";
    return "active";
}

bool silence::mutes(const label_set& labels, time_point now) const {
    if (state(now) != "active") return false;
    for (const auto& m : matchers)
        if (!m.matches(labels)) return false;
    return true;
}

namespace {

[[noreturn]] void bad(const std::string& field, const std::string& why) {
    throw std::invalid_argument("silence: " + field + ": " + why);
}

time_point time_field(const nlohmann::json& body, const char* field, time_point fallback) {
    if (!body.contains(field)) return fallback;
    if (!body[field].is_string()) bad(field, "must be an RFC 3339 time string");
    const auto t = parse_rfc3339(body[field].get<std::string>());
    if (!t) bad(field, "not an RFC 3339 time: " + body[field].get<std::string>());
    return *t;
}

matcher matcher_from_json(const nlohmann::json& j, std::size_t i) {
    const std::string at = "matchers[" + std::to_string(i) + "]";
    if (!j.is_object()) bad(at, "must be an object");
    matcher m;
    if (!j.contains("name") || !j["name"].is_string() || j["name"].get<std::string>().empty())
        bad(at + ".name", "a non-empty string is required");
    if (!j.contains("value") || !j["value"].is_string()) bad(at + ".value", "a string is required");
    m.name = j["name"].get<std::string>();
    m.value = j["value"].get<std::string>();
    if (j.contains("isRegex")) {
        if (!j["isRegex"].is_boolean()) bad(at + ".isRegex", "must be true or false");
        m.is_regex = j["isRegex"].get<bool>();
    }
    if (j.contains("isEqual")) {
        if (!j["isEqual"].is_boolean()) bad(at + ".isEqual", "must be true or false");
        m.is_equal = j["isEqual"].get<bool>();
    }
    if (m.is_regex) {
        try {
            m.re = std::make_shared<const std::regex>("^(?:" + m.value + ")$");
        } catch (const std::regex_error& e) {
            bad(at + ".value", std::string("not a valid regular expression: ") + e.what());
        }
    }
    return m;
}

}  // namespace

silence silence_from_json(const nlohmann::json& body, time_point now) {
    if (!body.is_object()) bad("body", "must be a JSON object");
    if (!body.contains("matchers") || !body["matchers"].is_array() || body["matchers"].empty())
        bad("matchers", "a non-empty array is required");
    silence s;
    for (std::size_t i = 0; i < body["matchers"].size(); ++i)
        s.matchers.push_back(matcher_from_json(body["matchers"][i], i));
    s.starts_at = time_field(body, "startsAt", now);
    if (!body.contains("endsAt")) bad("endsAt", "is required");
    s.ends_at = time_field(body, "endsAt", now);
    if (s.ends_at <= s.starts_at) bad("endsAt", "must be after startsAt");
    if (s.ends_at <= now) bad("endsAt", "is in the past");
    for (const char* f : {"createdBy", "comment"})
        if (body.contains(f) && !body[f].is_string()) bad(f, "must be a string");
    s.created_by = body.value("createdBy", "");
    s.comment = body.value("comment", "");
    return s;
}

nlohmann::json to_json(const silence& s, time_point now) {
    nlohmann::json matchers = nlohmann::json::array();
    for (const auto& m : s.matchers)
        matchers.push_back({{"name", m.name},
                            {"value", m.value},
                            {"isRegex", m.is_regex},
                            {"isEqual", m.is_equal}});
    return {{"id", s.id},
            {"matchers", std::move(matchers)},
            {"startsAt", format_rfc3339(s.starts_at)},
            {"endsAt", format_rfc3339(s.ends_at)},
            {"createdBy", s.created_by},
            {"comment", s.comment},
            {"status", {{"state", s.state(now)}}}};
}

}  // namespace plugmon::agent::alert
