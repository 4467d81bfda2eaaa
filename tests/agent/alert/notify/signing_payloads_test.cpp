// HMAC-SHA256, base64 and Standard Webhooks signatures against published and independently
// computed values; the shapes of the Alertmanager, webhook v4, Slack and summary payloads.
#include "alert/notify/http_client.hpp"
#include "alert/notify/payloads.hpp"
#include "alert/notify/signing.hpp"
#include "common/rfc3339.hpp"
#include "test_events.hpp"

#include <gtest/gtest.h>

using namespace plugmon::agent;
using namespace plugmon::agent::alert;
using namespace plugmon::agent::alert::notify;
using plugmon::agent::testing::make_event;

TEST(signing, hmac_sha256_matches_rfc4231) {
    EXPECT_EQ(to_hex(hmac_sha256(std::string(20, '\x0b'), "Hi There")),
              "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    EXPECT_EQ(to_hex(hmac_sha256("Jefe", "what do ya want for nothing?")),
              "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    // A key longer than the block is hashed first (test case 6).
    EXPECT_EQ(to_hex(hmac_sha256(std::string(131, '\xaa'),
                                 "Test Using Larger Than Block-Size Key - Hash Key First")),
              "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(signing, base64_round_trips_and_rejects_garbage) {
    EXPECT_EQ(base64_encode("plugmon"), "cGx1Z21vbg==");
    EXPECT_EQ(base64_encode("pl"), "cGw=");
    EXPECT_EQ(base64_encode("p"), "cA==");
    EXPECT_EQ(base64_encode(""), "");
    EXPECT_EQ(base64_decode("cGx1Z21vbg==").value(), "plugmon");
    EXPECT_EQ(base64_decode("cGw").value(), "pl");
    EXPECT_FALSE(base64_decode("cG!=").has_value());
    EXPECT_FALSE(base64_decode("c").has_value());
    std::string all;
    for (int i = 0; i < 256; ++i) all += char(i);
    EXPECT_EQ(base64_decode(base64_encode(all)).value(), all);
}

TEST(signing, standard_webhooks_signature_matches_an_independent_computation) {
    // Expected from: python3 hmac/hashlib/base64 over the base64-decoded whsec_ key.
    std::string key = webhook_signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n");
    EXPECT_EQ(webhook_signature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
                                "{\"test\": 2432232314}"),
              "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    EXPECT_EQ(webhook_signing_key("plain secret"), "plain secret");
    EXPECT_THROW(webhook_signing_key("whsec_!!!"), std::invalid_argument);
}

TEST(payloads, alertmanager_alert_has_the_v2_fields) {
    auto now = std::chrono::system_clock::now();
    auto n = make_event("am", "00000000000000aa", event_kind::firing, 1, "ep1", now);
    am_alert a{labels_with_severity(n.alert, severity::critical), annotations_with_value(n.alert),
               n.alert.fired_at, now + std::chrono::minutes(4),
               generator_url("http://agent:9187", n.alert.fingerprint)};
    auto body = alertmanager_body({a});
    ASSERT_TRUE(body.is_array());
    ASSERT_EQ(body.size(), 1u);
    const auto& j = body[0];
    EXPECT_EQ(j["labels"]["severity"], "critical");
    EXPECT_EQ(j["labels"]["alertname"], "PluginErrorRatioHigh");
    EXPECT_EQ(j["labels"]["host"], "h1");
    EXPECT_EQ(j["annotations"]["value"], "0.25");
    EXPECT_EQ(j["annotations"]["summary"], "plugin fails");
    EXPECT_EQ(j["startsAt"], format_rfc3339(n.alert.fired_at));
    EXPECT_EQ(j["endsAt"], format_rfc3339(now + std::chrono::minutes(4)));
    EXPECT_EQ(j["generatorURL"], "http://agent:9187/api/v1/alerts/00000000000000aa");
}

TEST(payloads, webhook_message_is_v4_with_the_plugmon_object) {
    auto n = make_event("ops", "00000000000000aa", event_kind::severity_changed, 7);
    n.previous_level = severity::warning;
    n.alert.level = severity::critical;
    n.escalation_step = 1;
    auto j = webhook_message("ops", {n}, {"http://agent:9187", {}});
    for (const char* key :
         {"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
          "commonLabels", "commonAnnotations", "externalURL", "alerts", "plugmon"})
        EXPECT_TRUE(j.contains(key)) << key;
    EXPECT_EQ(j["version"], "4");
    EXPECT_EQ(j["status"], "firing");
    EXPECT_EQ(j["receiver"], "ops");
    EXPECT_EQ(j["truncatedAlerts"], 0);
    EXPECT_EQ(j["groupLabels"]["alertname"], "PluginErrorRatioHigh");
    EXPECT_EQ(j["commonLabels"]["severity"], "critical");
    const auto& a = j["alerts"][0];
    EXPECT_EQ(a["status"], "firing");
    EXPECT_EQ(a["labels"]["severity"], "critical");
    EXPECT_EQ(a["fingerprint"], "00000000000000aa");
    EXPECT_EQ(a["endsAt"], "0001-01-01T00:00:00Z");
    EXPECT_EQ(a["generatorURL"], "http://agent:9187/api/v1/alerts/00000000000000aa");
    const auto& p = j["plugmon"];
    EXPECT_EQ(p["event"], "severity_changed");
    EXPECT_EQ(p["event_id"], n.id);
    EXPECT_EQ(p["episode"], "ep1");
    EXPECT_EQ(p["sequence"], 7);
    ASSERT_EQ(p["events"].size(), 1u);
    EXPECT_EQ(p["events"][0]["previous_level"], "warning");
    EXPECT_EQ(p["events"][0]["level"], "critical");
    EXPECT_EQ(p["events"][0]["escalation_step"], 1);
    EXPECT_TRUE(p["events"][0]["ack"].is_null());
}

TEST(payloads, grouped_webhook_message_truncates_alerts_but_lists_every_event) {
    std::vector<notification> events;
    for (int i = 0; i < 5; ++i)
        events.push_back(make_event("ops", "fp" + std::to_string(i), event_kind::resolved, 2));
    auto j = webhook_message("ops", events, {"http://agent", {}}, 3);
    EXPECT_EQ(j["status"], "resolved");
    EXPECT_EQ(j["alerts"].size(), 3u);
    EXPECT_EQ(j["truncatedAlerts"], 2);
    EXPECT_EQ(j["plugmon"]["events"].size(), 5u);
    EXPECT_EQ(j["plugmon"]["event"], "resolved");
    EXPECT_FALSE(j["plugmon"].contains("episode"));  // several events: per event only
    EXPECT_EQ(j["alerts"][0]["status"], "resolved");
    EXPECT_NE(j["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    EXPECT_FALSE(j["commonLabels"].contains("plugin"));  // differs between the alerts
}

TEST(payloads, slack_message_and_summary) {
    auto n = make_event("chat", "fp1", event_kind::firing, 1);
    auto j = slack_message({n}, {"http://agent", {}});
    EXPECT_NE(j["text"].get<std::string>().find("PluginErrorRatioHigh"), std::string::npos);
    EXPECT_TRUE(j["blocks"].is_array());
    std::vector<notification> events = {n, make_event("chat", "fp2", event_kind::resolved, 2),
                                        make_event("chat", "fp2", event_kind::acknowledged, 3)};
    auto s = summarize(events);
    EXPECT_EQ(s.firing, 1u);
    EXPECT_EQ(s.resolved, 1u);
    EXPECT_EQ(s.total, 3u);
    EXPECT_EQ(s.fingerprints, (std::vector<std::string>{"fp1", "fp2"}));
    auto text = summary_text(s, "http://agent");
    EXPECT_NE(text.find("1 firing, 1 resolved, 1 acknowledged"), std::string::npos) << text;
    EXPECT_NE(text.find("http://agent/api/v1/alerts"), std::string::npos);
    auto w = summary_webhook("ops", s, {"http://agent", {}});
    EXPECT_EQ(w["plugmon"]["event"], "summary");
    EXPECT_EQ(w["plugmon"]["summary"]["total"], 3);
    EXPECT_EQ(w["truncatedAlerts"], 3);
}

TEST(http_client, rejects_https_naming_the_receiver) {
    try {
        http_client c("ops", "https://example.com/hook", std::chrono::seconds(1));
        FAIL() << "https accepted";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("\"ops\""), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("https"), std::string::npos) << e.what();
    }
    EXPECT_THROW(http_client("x", "ftp://h/", std::chrono::seconds(1)), std::invalid_argument);
    EXPECT_THROW(http_client("x", "http://h:0/", std::chrono::seconds(1)), std::invalid_argument);
    http_client c("x", "http://[::1]:8080", std::chrono::seconds(1));
    EXPECT_EQ(c.host(), "::1");
    EXPECT_EQ(c.port(), "8080");
    EXPECT_EQ(c.target(), "/");
}

TEST(http_client, parses_retry_after_as_seconds_or_date) {
    auto now = std::chrono::system_clock::from_time_t(784111777);  // Sun, 06 Nov 1994 08:49:37 GMT
    EXPECT_EQ(parse_retry_after("120", now).value(), std::chrono::seconds(120));
    EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now).value(),
              std::chrono::seconds(30));
    EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now).value(),
              std::chrono::seconds(0));
    EXPECT_FALSE(parse_retry_after("soon", now).has_value());
    EXPECT_FALSE(parse_retry_after("-3", now).has_value());
}
