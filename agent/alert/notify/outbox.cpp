// The outbox's files: records framed by store::encode_record, written atomically and durably.
#include "alert/notify/outbox.hpp"
#include "common/unix_ns.hpp"

#include "store/write/spool.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

namespace plugmon::agent::alert::notify {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

json labels_json(const label_set& l) {
    json j = json::object();
    for (const auto& [k, v] : l) j[k] = v;
    return j;
}
label_set labels_from(const json& j) {
    label_set l;
    for (const auto& [k, v] : j.items()) l[k] = v.get<std::string>();
    return l;
}

template <typename Enum>
Enum enum_from(const json& j, int count, const char* field) {
    auto text = j.get<std::string>();
    for (int i = 0; i < count; ++i)
        if (to_string(Enum(i)) == text) return Enum(i);
    throw std::invalid_argument(std::string("notification: ") + field + ": unknown \"" + text +
                                "\"");
}

[[noreturn]] void throw_errno(const std::string& what, const std::string& path) {
    throw std::system_error(errno, std::generic_category(), "outbox: " + what + " " + path);
}

void fsync_path(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) throw_errno("open", path);
    int rc = ::fsync(fd);
    int saved = errno;
    ::close(fd);
    errno = saved;
    if (rc != 0) throw_errno("fsync", path);
}

std::optional<std::uint64_t> seq_of(const std::string& name) {
    if (name.size() != 24 || name.substr(20) != ".rec") return std::nullopt;
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(name.data(), name.data() + 20, v);
    if (ec != std::errc() || p != name.data() + 20) return std::nullopt;
    return v;
}

json record_json(const outbox_record& r) {
    return {{"group", r.group},           {"n", to_json(r.n)},
            {"attempts", r.attempts},     {"last_status", r.last_status},
            {"last_error", r.last_error}, {"dead_at", to_unix_ns(r.dead_at)}};
}

}  // namespace

json to_json(const notification& n) {
    const auto& a = n.alert;
    json alert = {{"fingerprint", a.fingerprint},
                  {"rule", a.rule},
                  {"labels", labels_json(a.labels)},
                  {"annotations", labels_json(a.annotations)},
                  {"state", to_string(a.state)},
                  {"level", to_string(a.level)},
                  {"value", a.value},
                  {"episode", a.episode},
                  {"active_at", to_unix_ns(a.active_at)},
                  {"fired_at", to_unix_ns(a.fired_at)},
                  {"resolved_at", to_unix_ns(a.resolved_at)},
                  {"ack", nullptr}};
    if (a.ack)
        alert["ack"] = {{"by", a.ack->by},
                        {"comment", a.ack->comment},
                        {"at", to_unix_ns(a.ack->at)},
                        {"expires_at", to_unix_ns(a.ack->expires_at)}};
    json j = {{"id", n.id},
              {"receiver", n.receiver},
              {"event", to_string(n.event)},
              {"sequence", n.sequence},
              {"alert", alert},
              {"previous_level", nullptr},
              {"escalation_step", n.escalation_step},
              {"created", to_unix_ns(n.created)}};
    if (n.previous_level) j["previous_level"] = to_string(*n.previous_level);
    return j;
}

notification notification_from_json(const json& j) {
    notification n;
    n.id = j.at("id").get<std::string>();
    n.receiver = j.at("receiver").get<std::string>();
    n.event = enum_from<event_kind>(j.at("event"), event_kind_count, "event");
    n.sequence = j.at("sequence").get<std::uint64_t>();
    if (!j.at("previous_level").is_null())
        n.previous_level = enum_from<severity>(j.at("previous_level"), severity_count, "level");
    n.escalation_step = j.at("escalation_step").get<int>();
    n.created = from_unix_ns(j.at("created").get<std::int64_t>());
    const json& a = j.at("alert");
    auto& v = n.alert;
    v.fingerprint = a.at("fingerprint").get<std::string>();
    v.rule = a.at("rule").get<std::string>();
    v.labels = labels_from(a.at("labels"));
    v.annotations = labels_from(a.at("annotations"));
    v.state = enum_from<alert_state>(a.at("state"), 4, "state");
    v.level = enum_from<severity>(a.at("level"), severity_count, "level");
    v.value = a.at("value").get<double>();
    v.episode = a.at("episode").get<std::string>();
    v.active_at = from_unix_ns(a.at("active_at").get<std::int64_t>());
    v.fired_at = from_unix_ns(a.at("fired_at").get<std::int64_t>());
    v.resolved_at = from_unix_ns(a.at("resolved_at").get<std::int64_t>());
    if (!a.at("ack").is_null()) {
        const json& k = a.at("ack");
        v.ack = ack_info{k.at("by").get<std::string>(), k.at("comment").get<std::string>(),
                         from_unix_ns(k.at("at").get<std::int64_t>()),
                         from_unix_ns(k.at("expires_at").get<std::int64_t>())};
    }
    return n;
}

outbox::outbox(std::string dir) : dir_(std::move(dir)) {
    while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
    std::error_code ec;
    fs::create_directories(dir_ + "/dead", ec);
    if (ec) throw std::system_error(ec, "outbox: create " + dir_ + "/dead");
    fs::permissions(dir_, fs::perms::owner_all, ec);
    lock_fd_ = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lock_fd_ < 0) throw_errno("open", dir_);
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
        int saved = errno;
        ::close(lock_fd_);
        errno = saved;
        throw_errno("lock (is another agent using it?)", dir_);
    }
}

outbox::~outbox() {
    if (lock_fd_ >= 0) ::close(lock_fd_);
}

std::string outbox::record_path(std::uint64_t seq, bool dead) const {
    char name[32];
    std::snprintf(name, sizeof name, "%020llu.rec", static_cast<unsigned long long>(seq));
    return dir_ + (dead ? "/dead/" : "/") + name;
}

std::optional<outbox_record> outbox::read_record(const std::string& path, std::uint64_t seq) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw_errno("read", path);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string bytes = ss.str();
    try {
        auto header = store::parse_record_header(bytes);
        auto payload = store::record_payload(header, bytes);
        json j = json::parse(payload);
        outbox_record r;
        r.seq = seq;
        r.group = j.at("group").get<std::string>();
        r.n = notification_from_json(j.at("n"));
        r.attempts = j.at("attempts").get<int>();
        r.last_status = j.at("last_status").get<unsigned>();
        r.last_error = j.at("last_error").get<std::string>();
        r.dead_at = from_unix_ns(j.at("dead_at").get<std::int64_t>());
        return r;
    } catch (const std::exception& e) {
        corrupt_.fetch_add(1, std::memory_order_relaxed);
        spdlog::error("alert outbox: {} is corrupt ({}); kept as {}.corrupt, not delivered", path,
                      e.what(), path);
        std::error_code ec;
        fs::rename(path, path + ".corrupt", ec);
        return std::nullopt;
    }
}

std::vector<outbox_record> outbox::load() {
    std::lock_guard lock(mu_);
    std::vector<outbox_record> pending;
    for (bool dead : {false, true}) {
        std::string d = dead ? dir_ + "/dead" : dir_;
        std::vector<std::pair<std::uint64_t, std::string>> files;
        for (const auto& entry : fs::directory_iterator(d)) {
            std::string name = entry.path().filename().string();
            if (name.size() > 4 && name.substr(name.size() - 4) == ".tmp") {
                std::error_code ec;
                fs::remove(entry.path(), ec);
            } else if (auto seq = seq_of(name)) {
                files.emplace_back(*seq, entry.path().string());
            }
        }
        std::sort(files.begin(), files.end());
        for (const auto& [seq, path] : files) {
            next_seq_ = std::max(next_seq_, seq + 1);
            auto r = read_record(path, seq);
            if (!r) continue;
            auto size = std::uint64_t(fs::file_size(path));
            bytes_.fetch_add(size, std::memory_order_relaxed);
            (dead ? dead_sizes_ : sizes_)[seq] = size;
            if (dead)
                dead_.emplace(seq, std::move(*r));
            else
                pending.push_back(std::move(*r));
        }
    }
    return pending;
}

void outbox::write_durably(const std::string& path, std::string_view bytes, bool sync_dir) {
    std::string tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) throw_errno("create", tmp);
    std::size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int saved = errno;
            ::close(fd);
            ::unlink(tmp.c_str());
            errno = saved;
            throw_errno("write", tmp);
        }
        done += std::size_t(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        int saved = errno;
        ::unlink(tmp.c_str());
        errno = saved;
        throw_errno("fsync", tmp);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) throw_errno("rename", tmp);
    if (sync_dir) fsync_path(path.substr(0, path.rfind('/')));
}

void outbox::append(std::vector<outbox_record>& records) {
    std::lock_guard lock(mu_);
    append_locked(records);
}

void outbox::append_locked(std::vector<outbox_record>& records) {
    for (auto& r : records) {
        r.seq = next_seq_++;
        std::string bytes = store::encode_record(r.seq, 1, record_json(r).dump());
        write_durably(record_path(r.seq, false), bytes, false);
        sizes_[r.seq] = bytes.size();
        bytes_.fetch_add(bytes.size(), std::memory_order_relaxed);
    }
    fsync_path(dir_);
}

void outbox::remove(std::uint64_t seq) {
    std::lock_guard lock(mu_);
    auto it = sizes_.find(seq);
    if (it == sizes_.end()) return;
    if (::unlink(record_path(seq, false).c_str()) != 0 && errno != ENOENT)
        throw_errno("unlink", record_path(seq, false));
    bytes_.fetch_sub(it->second, std::memory_order_relaxed);
    sizes_.erase(it);
}

void outbox::bury(const outbox_record& r) {
    std::lock_guard lock(mu_);
    std::string bytes = store::encode_record(r.seq, 1, record_json(r).dump());
    write_durably(record_path(r.seq, true), bytes, true);
    dead_[r.seq] = r;
    dead_sizes_[r.seq] = bytes.size();
    bytes_.fetch_add(bytes.size(), std::memory_order_relaxed);
    if (auto it = sizes_.find(r.seq); it != sizes_.end()) {
        if (::unlink(record_path(r.seq, false).c_str()) != 0 && errno != ENOENT)
            throw_errno("unlink", record_path(r.seq, false));
        bytes_.fetch_sub(it->second, std::memory_order_relaxed);
        sizes_.erase(it);
        fsync_path(dir_);
    }
}

std::vector<outbox_record> outbox::dead() const {
    std::lock_guard lock(mu_);
    std::vector<outbox_record> out;
    for (const auto& [seq, r] : dead_) out.push_back(r);
    return out;
}

std::optional<outbox_record> outbox::resurrect(const std::string& id) {
    std::lock_guard lock(mu_);
    auto it = std::find_if(dead_.begin(), dead_.end(),
                           [&](const auto& kv) { return kv.second.n.id == id; });
    if (it == dead_.end()) return std::nullopt;
    outbox_record r = it->second;
    std::uint64_t old_seq = it->first;
    r.attempts = 0;
    r.last_status = 0;
    r.last_error.clear();
    r.dead_at = {};
    r.group = r.n.id;
    std::vector<outbox_record> one{r};
    append_locked(one);
    if (::unlink(record_path(old_seq, true).c_str()) != 0 && errno != ENOENT)
        throw_errno("unlink", record_path(old_seq, true));
    bytes_.fetch_sub(dead_sizes_[old_seq], std::memory_order_relaxed);
    dead_sizes_.erase(old_seq);
    dead_.erase(old_seq);
    return one.front();
}

void outbox::write_state(const std::string& name, std::string_view bytes) {
    std::lock_guard lock(mu_);
    write_durably(dir_ + "/" + name, bytes, true);
}

std::optional<std::string> outbox::read_state(const std::string& name) const {
    std::ifstream in(dir_ + "/" + name, std::ios::binary);
    if (!in) return std::nullopt;
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace plugmon::agent::alert::notify
