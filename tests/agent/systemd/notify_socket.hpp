// A test's own notification socket: the service manager's side of sd_notify (a bound AF_UNIX
// datagram socket at a path or an abstract name) that collects what the agent sends.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace plugmon::test {

class notify_socket {
public:
    /// Binds `address`: an absolute path, or '@' followed by an abstract name.
    explicit notify_socket(const std::string& address) : address_(address) {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0) throw std::runtime_error("socket failed");
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        if (address.size() >= sizeof a.sun_path) throw std::runtime_error("address too long");
        std::memcpy(a.sun_path, address.data(), address.size());
        socklen_t len = socklen_t(offsetof(sockaddr_un, sun_path) + address.size() + 1);
        if (address[0] == '@') {
            a.sun_path[0] = '\0';
            len = socklen_t(offsetof(sockaddr_un, sun_path) + address.size());
        }
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0)
            throw std::runtime_error("bind " + address + ": " + std::strerror(errno));
    }
    ~notify_socket() {
        ::close(fd_);
        if (address_[0] == '/') ::unlink(address_.c_str());
    }
    notify_socket(const notify_socket&) = delete;
    notify_socket& operator=(const notify_socket&) = delete;

    const std::string& address() const { return address_; }

    /// The next datagram, or nullopt when none arrives within `timeout`.
    std::optional<std::string> receive(std::chrono::milliseconds timeout) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, int(timeout.count())) <= 0) return std::nullopt;
        char buf[4096];
        const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n < 0) return std::nullopt;
        return std::string(buf, std::size_t(n));
    }

    /// Datagrams until one contains `line` (as a whole line); nullopt when `timeout` passes
    /// first. Every datagram read on the way is appended to `seen` (when given).
    std::optional<std::string> wait_for(const std::string& line, std::chrono::milliseconds timeout,
                                        std::string* seen = nullptr) {
        const auto end = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                end - std::chrono::steady_clock::now());
            if (left.count() <= 0) return std::nullopt;
            auto m = receive(left);
            if (!m) return std::nullopt;
            if (seen) *seen += *m + "\n--\n";
            if (has_line(*m, line)) return m;
        }
    }

    static bool has_line(const std::string& message, const std::string& line) {
        std::size_t start = 0;
        while (start <= message.size()) {
            const auto end = message.find('\n', start);
            const auto l = message.substr(start, end == std::string::npos ? end : end - start);
            if (l == line) return true;
            if (end == std::string::npos) break;
            start = end + 1;
        }
        return false;
    }

    /// The value of `key=` in `message`, or "" when absent.
    static std::string value(const std::string& message, const std::string& key) {
        const std::string text = "\n" + message;
        const auto pos = text.find("\n" + key + "=");
        if (pos == std::string::npos) return "";
        const auto start = pos + key.size() + 2;
        const auto end = text.find('\n', start);
        return text.substr(start, end == std::string::npos ? end : end - start);
    }

private:
    std::string address_;
    int fd_ = -1;
};

}  // namespace plugmon::test
