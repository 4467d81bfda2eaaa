// A TCP relay between the agent and a real PostgreSQL server that cuts the connection at a chosen
// point of the wire protocol: while a COPY streams, or after a COMMIT was executed but before its
// acknowledgement reaches the client (the "in-doubt" commit).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace plugmon::test {

class fault_proxy {
public:
    enum class fault { none, cut_during_copy, cut_after_commit };

    explicit fault_proxy(int upstream_port) : upstream_port_(upstream_port) {
        listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int one = 1;
        ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listener_, 16) != 0)
            throw std::runtime_error("fault_proxy: cannot listen");
        socklen_t len = sizeof a;
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        thread_ = std::thread([this] { accept_loop(); });
    }
    ~fault_proxy() {
        stop_.store(true);
        ::shutdown(listener_, SHUT_RDWR);
        thread_.join();
        for (auto& t : sessions_) t.join();
        ::close(listener_);
    }
    fault_proxy(const fault_proxy&) = delete;
    fault_proxy& operator=(const fault_proxy&) = delete;

    int port() const { return port_; }
    /// The next matching point of any session cuts that session (once; then it disarms).
    void arm(fault f) { armed_.store(int(f)); }
    /// Cuts made so far.
    int cuts() const { return cuts_.load(); }

private:
    void accept_loop() {
        while (!stop_.load()) {
            pollfd p{listener_, POLLIN, 0};
            if (::poll(&p, 1, 100) <= 0) continue;
            const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
            if (client < 0) continue;
            const int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            a.sin_port = htons(std::uint16_t(upstream_port_));
            if (::connect(server, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
                ::close(server);
                ::close(client);
                continue;
            }
            sessions_.emplace_back([this, client, server] { relay(client, server); });
        }
    }

    static bool send_all(int fd, const char* p, std::size_t n) {
        while (n > 0) {
            const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
            if (w <= 0) return false;
            p += w;
            n -= std::size_t(w);
        }
        return true;
    }

    /// Relays one session. Client→server bytes are split into protocol messages: the first one
    /// or two (SSL/GSS request, startup) have no type byte; the rest are type + int32 length.
    void relay(int client, int server) {
        std::string pending;        // client bytes not yet forwarded (an incomplete message)
        int untyped = 1;            // untyped messages still expected
        bool await_commit_ack = false;
        char buf[65536];
        bool open = true;
        while (open && !stop_.load()) {
            pollfd p[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
            if (::poll(p, 2, 100) <= 0) continue;
            if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
                const ssize_t n = ::recv(server, buf, sizeof buf, 0);
                if (n <= 0) break;
                if (await_commit_ack) {
                    // The server executed the COMMIT and answers: the client never hears it.
                    cuts_.fetch_add(1);
                    break;
                }
                if (!send_all(client, buf, std::size_t(n))) break;
            }
            if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
                const ssize_t n = ::recv(client, buf, sizeof buf, 0);
                if (n <= 0) break;
                pending.append(buf, std::size_t(n));
                std::size_t at = 0;
                while (open) {
                    std::size_t len;
                    char type = 0;
                    if (untyped > 0) {
                        if (pending.size() - at < 8) break;
                        len = be32(pending.data() + at);
                        const std::uint32_t code = be32(pending.data() + at + 4);
                        if (code == 80877103u || code == 80877104u) ++untyped;  // SSL/GSS request first
                    } else {
                        if (pending.size() - at < 5) break;
                        type = pending[at];
                        len = 1 + be32(pending.data() + at + 1);
                    }
                    if (pending.size() - at < len) break;
                    const int f = armed_.load();
                    if (type == 'd' && f == int(fault::cut_during_copy) && disarm(f)) {
                        cuts_.fetch_add(1);
                        open = false;  // cut before this COPY data reaches the server
                        break;
                    }
                    if (type == 'Q' && f == int(fault::cut_after_commit) &&
                        std::string_view(pending.data() + at + 5, len - 5).starts_with("COMMIT") && disarm(f))
                        await_commit_ack = true;
                    if (untyped > 0) --untyped;
                    if (!send_all(server, pending.data() + at, len)) {
                        open = false;
                        break;
                    }
                    at += len;
                }
                pending.erase(0, at);
            }
        }
        ::close(client);
        ::close(server);
    }

    bool disarm(int f) { return armed_.compare_exchange_strong(f, int(fault::none)); }
    static std::uint32_t be32(const char* p) {
        const auto* u = reinterpret_cast<const unsigned char*>(p);
        return std::uint32_t(u[0]) << 24 | std::uint32_t(u[1]) << 16 | std::uint32_t(u[2]) << 8 | u[3];
    }

    int upstream_port_;
    int listener_ = -1;
    int port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> armed_{int(fault::none)};
    std::atomic<int> cuts_{0};
    std::thread thread_;
    std::vector<std::thread> sessions_;  // accept thread only, joined at destruction
};

}  // namespace plugmon::test
