// sd_notify's datagram protocol over a Unix socket: address parsing (path or '@' abstract name),
// the sender, and the message texts.
#include "app/systemd/notify.hpp"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <utility>

#include <unistd.h>

namespace plugmon::agent::systemd {

namespace {

/// The sockaddr_un for `address` and its length (abstract names are not NUL-terminated: the
/// length counts the leading NUL and the name, nothing more).
socklen_t encode_address(const std::string& address, sockaddr_un& out) {
    std::memset(&out, 0, sizeof out);
    out.sun_family = AF_UNIX;
    const bool abstract = address.size() > 1 && address[0] == '@';
    if (!abstract && (address.empty() || address[0] != '/'))
        throw std::invalid_argument("NOTIFY_SOCKET: \"" + address +
                                    "\" is neither an absolute path nor an @abstract name");
    const std::size_t room = sizeof out.sun_path - 1;  // a path's NUL after, a name's NUL before
    if (address.size() - (abstract ? 1 : 0) > room)
        throw std::invalid_argument("NOTIFY_SOCKET: \"" + address + "\" is longer than the " +
                                    std::to_string(room) + " bytes a Unix socket address holds");
    if (abstract) {
        std::memcpy(out.sun_path + 1, address.data() + 1, address.size() - 1);
        return socklen_t(offsetof(sockaddr_un, sun_path) + address.size());
    }
    std::memcpy(out.sun_path, address.data(), address.size());
    return socklen_t(offsetof(sockaddr_un, sun_path) + address.size() + 1);
}

std::string one_line(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c == '\n' || c == '\r') c = ' ';
    return out;
}

}  // namespace

notifier::notifier(std::string address)
    : address_(std::move(address)),
      addr_len_(encode_address(address_, addr_)) {  // a bad address: refused before any socket
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0)
        throw std::runtime_error(std::string("NOTIFY_SOCKET: socket: ") + std::strerror(errno));
}

notifier::~notifier() {
    if (fd_ >= 0) ::close(fd_);
}

notifier notifier::from_env() {
    const char* v = std::getenv("NOTIFY_SOCKET");
    if (v == nullptr || *v == '\0') return notifier{};
    try {
        return notifier(v);
    } catch (const std::exception& e) {
        spdlog::error("systemd: {}; no notifications will be sent", e.what());
        return notifier{};
    }
}

bool notifier::send(std::string_view message, std::string* error) const {
    if (fd_ < 0) return true;
    for (;;) {
        const ssize_t n = ::sendto(fd_, message.data(), message.size(), MSG_NOSIGNAL | MSG_DONTWAIT,
                                   reinterpret_cast<const sockaddr*>(&addr_), addr_len_);
        if (n == ssize_t(message.size())) return true;
        if (n < 0 && errno == EINTR) continue;
        if (error != nullptr)
            *error = n < 0 ? std::string(std::strerror(errno)) : std::string("short datagram");
        return false;
    }
}

std::string ready_message(std::string_view status) { return "READY=1\nSTATUS=" + one_line(status); }

std::string reloading_message(std::uint64_t usec) {
    return "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec);
}

std::string stopping_message(std::string_view status) {
    return "STOPPING=1\nSTATUS=" + one_line(status);
}

std::string watchdog_message() { return "WATCHDOG=1"; }

std::uint64_t monotonic_usec() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::uint64_t(ts.tv_sec) * 1000000u + std::uint64_t(ts.tv_nsec) / 1000u;
}

}  // namespace plugmon::agent::systemd
