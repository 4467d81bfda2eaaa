// /api/v1/alerts (list, one, ack), /api/v1/silences and /api/v1/notifications: the alert
// engine's HTTP surface. Reads need scope read; acks and silences scope ack; replays admin.
#include "alert/engine/engine.hpp"
#include "common/duration.hpp"
#include "web/api/json.hpp"
#include "web/api/routes.hpp"

namespace plugmon::agent::api {

namespace {

constexpr auto default_ack_ttl = std::chrono::minutes(30);
constexpr auto max_ack_ttl = std::chrono::hours(24 * 7);

http_response not_configured() {
    return error_response(404, "alerting is not configured here (set alert_rules)");
}

std::string actor(const http_request& req) {
    return req.principal.empty() ? std::string("anonymous") : req.principal;
}

/// The body of an ack: {"comment": "...", "ttl": "30m"}; both optional.
std::optional<http_response> parse_ack(const http_request& req, std::string& comment,
                                       std::chrono::nanoseconds& ttl) {
    ttl = default_ack_ttl;
    if (req.body.empty()) return std::nullopt;
    const auto body = nlohmann::json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object())
        return error_response(400, "body: must be a JSON object");
    for (const auto& [key, value] : body.items())
        if (key != "comment" && key != "ttl")
            return error_response(400, "body: unknown field \"" + key + "\"");
    if (body.contains("comment")) {
        if (!body["comment"].is_string()) return error_response(400, "comment: must be a string");
        comment = body["comment"].get<std::string>();
    }
    if (body.contains("ttl")) {
        const auto d =
            body["ttl"].is_string() ? parse_duration(body["ttl"].get<std::string>()) : std::nullopt;
        if (!d || d->count() <= 0 || *d > max_ack_ttl)
            return error_response(400, "ttl: a duration such as \"30m\", at most 7d");
        ttl = *d;
    }
    return std::nullopt;
}

void add_alert_reads(router& r, const api_context& ctx) {
    r.add({"GET", "/api/v1/alerts", "alerts", scope::read,
           [&ctx](const http_request& req, const route_params&) {
               if (ctx.alerts == nullptr) return not_configured();
               return json_response(
                   ctx.alerts->alerts_json(query_param(req.target, "state").value_or(""),
                                           query_param(req.target, "severity").value_or("")));
           }});
    r.add({"GET", "/api/v1/alerts/{fingerprint}", "alert", scope::read,
           [&ctx](const http_request&, const route_params& p) {
               if (ctx.alerts == nullptr) return not_configured();
               const auto a = ctx.alerts->alert_json(p.at("fingerprint"));
               if (!a) return error_response(404, "no such alert: " + p.at("fingerprint"));
               return json_response(*a);
           }});
}

void add_acks(router& r, const api_context& ctx) {
    r.add({"POST", "/api/v1/alerts/{fingerprint}/ack", "alert_ack", scope::ack,
           [&ctx](const http_request& req, const route_params& p) {
               if (ctx.alerts == nullptr) return not_configured();
               std::string comment;
               std::chrono::nanoseconds ttl{};
               if (auto bad = parse_ack(req, comment, ttl)) return std::move(*bad);
               nlohmann::json ack;
               switch (ctx.alerts->ack(p.at("fingerprint"), actor(req), comment, ttl, &ack)) {
                   case alert::ack_result::not_found:
                       return error_response(404, "no such alert: " + p.at("fingerprint"));
                   case alert::ack_result::not_firing:
                       return error_response(409,
                                             "the alert is not firing: nothing to acknowledge");
                   case alert::ack_result::ok:
                       break;
               }
               return json_response({{"fingerprint", p.at("fingerprint")}, {"ack", ack}});
           }});
    r.add({"DELETE", "/api/v1/alerts/{fingerprint}/ack", "alert_ack", scope::ack,
           [&ctx](const http_request& req, const route_params& p) {
               if (ctx.alerts == nullptr) return not_configured();
               switch (ctx.alerts->unack(p.at("fingerprint"), actor(req))) {
                   case alert::ack_result::not_found:
                       return error_response(404, "no such alert: " + p.at("fingerprint"));
                   case alert::ack_result::not_firing:
                       return error_response(409, "the alert is not acknowledged");
                   case alert::ack_result::ok:
                       break;
               }
               return json_response({{"fingerprint", p.at("fingerprint")}, {"ack", nullptr}});
           }});
}

void add_silences(router& r, const api_context& ctx) {
    r.add({"GET", "/api/v1/silences", "silences", scope::read,
           [&ctx](const http_request&, const route_params&) {
               if (ctx.alerts == nullptr) return not_configured();
               return json_response(ctx.alerts->silences_json());
           }});
    r.add({"POST", "/api/v1/silences", "silences", scope::ack,
           [&ctx](const http_request& req, const route_params&) {
               if (ctx.alerts == nullptr) return not_configured();
               const auto body = nlohmann::json::parse(req.body, nullptr, false);
               if (body.is_discarded()) return error_response(400, "body: not JSON");
               try {
                   return json_response({{"silenceID", ctx.alerts->add_silence(body, actor(req))}});
               } catch (const std::invalid_argument& e) {
                   return error_response(400, e.what());
               }
           }});
    r.add({"DELETE", "/api/v1/silences/{id}", "silence", scope::ack,
           [&ctx](const http_request&, const route_params& p) {
               if (ctx.alerts == nullptr) return not_configured();
               if (!ctx.alerts->expire_silence(p.at("id")))
                   return error_response(404, "no active silence " + p.at("id"));
               return json_response({{"silenceID", p.at("id")}, {"status", "expired"}});
           }});
}

void add_notifications(router& r, const api_context& ctx) {
    r.add({"GET", "/api/v1/notifications", "notifications", scope::read,
           [&ctx](const http_request& req, const route_params&) {
               if (!ctx.dead_letters) return not_configured();
               const auto state = query_param(req.target, "state").value_or("dead");
               if (state != "dead")
                   return error_response(400, "state: only \"dead\" is listed here");
               http_response out = json_response(nlohmann::json::object());
               out.body = ctx.dead_letters();
               return out;
           }});
    r.add({"POST", "/api/v1/notifications/{id}/retry", "notification_retry", scope::admin,
           [&ctx](const http_request&, const route_params& p) {
               if (!ctx.replay_notification) return not_configured();
               if (!ctx.replay_notification(p.at("id")))
                   return error_response(404, "no dead letter " + p.at("id"));
               return json_response({{"id", p.at("id")}, {"status", "queued"}});
           }});
}

}  // namespace

void add_alerts_routes(router& r, const api_context& ctx) {
    add_alert_reads(r, ctx);
    add_acks(r, ctx);
    add_silences(r, ctx);
    add_notifications(r, ctx);
}

}  // namespace plugmon::agent::api
