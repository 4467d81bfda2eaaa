// The engine's state file: every alert (state, `for` progress, episode, ack, escalation, what
// each receiver was sent), the silences and the sequence, replaced atomically after each window
// so that a SIGKILL loses nothing already decided.
#include "alert/engine/engine.hpp"

#include "common/rfc3339.hpp"
#include "common/unix_ns.hpp"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace plugmon::agent::alert {

namespace {

nlohmann::json instance_json(const instance& a) {
    nlohmann::json receivers = nlohmann::json::object();
    for (const auto& [name, p] : a.receivers)
        receivers[name] = {{"status", p.status}, {"last_sent", to_unix_ns(p.last_sent)}};
    nlohmann::json flips = nlohmann::json::array();
    for (const auto t : a.flips) flips.push_back(to_unix_ns(t));
    nlohmann::json history = nlohmann::json::array();
    for (const auto& h : a.history)
        history.push_back({to_unix_ns(h.at), h.what, int(h.level), h.value, h.detail});
    nlohmann::json j = {{"fingerprint", a.fingerprint},
                        {"rule", a.rule},
                        {"labels", a.labels},
                        {"state", int(a.state)},
                        {"level", int(a.level)},
                        {"value", a.value},
                        {"samples", a.samples},
                        {"episode", a.episode},
                        {"level_on", {a.level_on[0], a.level_on[1], a.level_on[2]}},
                        {"active_at", to_unix_ns(a.active_at)},
                        {"fired_at", to_unix_ns(a.fired_at)},
                        {"resolved_at", to_unix_ns(a.resolved_at)},
                        {"keep_firing_since", to_unix_ns(a.keep_firing_since)},
                        {"last_data_at", to_unix_ns(a.last_data_at)},
                        {"notified_status", a.notified_status},
                        {"delay_up_to", to_unix_ns(a.delay_up_to)},
                        {"up_cur", a.up_cur.count()},
                        {"down_cur", a.down_cur.count()},
                        {"receivers", std::move(receivers)},
                        {"flips", std::move(flips)},
                        {"flapping", a.flapping},
                        {"escalation", {a.escalation_step, a.escalation_loop, a.escalation_fired}},
                        {"history", std::move(history)}};
    if (a.lowering) j["lowering"] = {int(*a.lowering), to_unix_ns(a.lowering_since)};
    if (a.pending_status) j["pending"] = {*a.pending_status, to_unix_ns(a.pending_due)};
    if (a.ack)
        j["ack"] = {a.ack->by, a.ack->comment, to_unix_ns(a.ack->at),
                    to_unix_ns(a.ack->expires_at)};
    return j;
}

instance instance_from(const nlohmann::json& j) {
    instance a;
    a.fingerprint = j.at("fingerprint").get<std::string>();
    a.rule = j.at("rule").get<std::string>();
    a.labels = j.at("labels").get<label_set>();
    a.state = alert_state(j.at("state").get<int>());
    a.level = severity(j.at("level").get<int>());
    a.value = j.at("value").get<double>();
    a.samples = j.at("samples").get<std::uint64_t>();
    a.episode = j.at("episode").get<std::string>();
    for (std::size_t i = 0; i < a.level_on.size(); ++i) a.level_on[i] = j.at("level_on")[i];
    a.active_at = from_unix_ns(j.at("active_at"));
    a.fired_at = from_unix_ns(j.at("fired_at"));
    a.resolved_at = from_unix_ns(j.at("resolved_at"));
    a.keep_firing_since = from_unix_ns(j.at("keep_firing_since"));
    a.last_data_at = from_unix_ns(j.at("last_data_at"));
    a.notified_status = j.at("notified_status");
    a.delay_up_to = from_unix_ns(j.at("delay_up_to"));
    a.up_cur = nanoseconds(j.at("up_cur").get<std::int64_t>());
    a.down_cur = nanoseconds(j.at("down_cur").get<std::int64_t>());
    for (const auto& [name, p] : j.at("receivers").items())
        a.receivers[name] = {p.at("status").get<int>(), from_unix_ns(p.at("last_sent"))};
    for (const auto& f : j.at("flips")) a.flips.push_back(from_unix_ns(f));
    a.flapping = j.at("flapping");
    a.escalation_step = j.at("escalation")[0];
    a.escalation_loop = j.at("escalation")[1];
    a.escalation_fired = j.at("escalation")[2];
    for (const auto& h : j.at("history"))
        a.history.push_back({from_unix_ns(h[0]), h[1].get<std::string>(), severity(h[2].get<int>()),
                             h[3].get<double>(), h[4].get<std::string>()});
    if (j.contains("lowering")) {
        a.lowering = severity(j["lowering"][0].get<int>());
        a.lowering_since = from_unix_ns(j["lowering"][1]);
    }
    if (j.contains("pending")) {
        a.pending_status = j["pending"][0].get<int>();
        a.pending_due = from_unix_ns(j["pending"][1]);
    }
    if (j.contains("ack"))
        a.ack = ack_info{j["ack"][0], j["ack"][1], from_unix_ns(j["ack"][2]),
                         from_unix_ns(j["ack"][3])};
    return a;
}

/// Writes `text` to `path` through a temporary file, fsync and rename, then fsyncs the directory.
void replace_file(const std::string& dir, const std::string& path, const std::string& text) {
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "open " + tmp);
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const int e = errno;
            ::close(fd);
            throw std::system_error(e, std::generic_category(), "write " + tmp);
        }
        done += std::size_t(n);
    }
    if (::fsync(fd) != 0) {
        const int e = errno;
        ::close(fd);
        throw std::system_error(e, std::generic_category(), "fsync " + tmp);
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0)
        throw std::system_error(errno, std::generic_category(), "rename " + tmp);
    const int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d >= 0) {
        ::fsync(d);
        ::close(d);
    }
}

}  // namespace

void engine::save(time_point t) const {
    if (opts_.state_dir.empty()) return;
    nlohmann::json alerts = nlohmann::json::array();
    for (const auto& [fp, s] : alerts_) alerts.push_back(instance_json(s.a));
    nlohmann::json silences = nlohmann::json::array();
    for (const auto& s : silences_) silences.push_back(to_json(s, t));
    const nlohmann::json doc = {{"version", 1},
                                {"saved_at", to_unix_ns(t)},
                                {"sequence", sequence_},
                                {"alerts", std::move(alerts)},
                                {"silences", std::move(silences)}};
    try {
        ::mkdir(opts_.state_dir.c_str(), 0700);
        replace_file(opts_.state_dir, opts_.state_dir + "/state.json", doc.dump());
    } catch (const std::exception& e) {
        static std::atomic<std::uint64_t> failures{0};
        if (failures.fetch_add(1) % 100 == 0)
            spdlog::error("alerts: the state file could not be saved: {}", e.what());
    }
}

void engine::restore() {
    if (opts_.state_dir.empty()) return;
    const std::string path = opts_.state_dir + "/state.json";
    std::ifstream in(path);
    if (!in) return;  // first start
    std::ostringstream text;
    text << in.rdbuf();
    std::lock_guard<std::mutex> lock(mu_);
    try {
        const auto doc = nlohmann::json::parse(text.str());
        if (doc.at("version") != 1) throw std::runtime_error("unknown version");
        const time_point t = now();
        const nanoseconds down = t - from_unix_ns(doc.at("saved_at"));
        // Numbers handed out after the last save (a crash before the next one) are skipped, so
        // that no sequence number is used twice.
        sequence_ = doc.at("sequence").get<std::uint64_t>() + 1'000'000;
        for (const auto& j : doc.at("alerts")) {
            instance a = instance_from(j);
            if (a.state == alert_state::pending) {
                if (down > opts_.outage_tolerance) continue;  // too long: start `for` again
                a.active_at += std::chrono::duration_cast<time_point::duration>(down);
            }
            const std::string fp = a.fingerprint;
            std::string key;
            if (const auto r = by_name_.find(a.rule); r != by_name_.end()) {
                key = group_key_of(*r->second, a.labels);
                live_[a.rule][key] = fp;
            }
            alerts_.emplace(fp, slot{std::move(a), 0, key});
        }
        for (const auto& j : doc.at("silences")) {
            if (parse_rfc3339(j.at("endsAt").get<std::string>()) <= t) continue;  // expired
            silence s = silence_from_json({{"matchers", j.at("matchers")},
                                           {"startsAt", j.at("startsAt")},
                                           {"endsAt", j.at("endsAt")},
                                           {"createdBy", j.at("createdBy")},
                                           {"comment", j.at("comment")}},
                                          from_unix_ns(0));
            s.id = j.at("id");
            silences_.push_back(std::move(s));
        }
        restored_ = alerts_.size();
        spdlog::info("alerts: restored {} alerts and {} silences from {}", alerts_.size(),
                     silences_.size(), path);
    } catch (const std::exception& e) {
        throw std::runtime_error("alerts: cannot restore " + path + ": " + e.what());
    }
}

}  // namespace plugmon::agent::alert
