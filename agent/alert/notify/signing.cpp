// HMAC-SHA256 over common/sha256, base64, and the Standard Webhooks signature.
#include "alert/notify/signing.hpp"

#include <array>
#include <cstdint>
#include <stdexcept>

namespace plugmon::agent::alert::notify {

namespace {

constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::size_t sha256_block = 64;

int sextet(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

std::string_view trim(std::string_view s) {
    const char* space = " \t\r\n";
    auto first = s.find_first_not_of(space);
    if (first == std::string_view::npos) return {};
    return s.substr(first, s.find_last_not_of(space) - first + 1);
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3) {
        std::uint32_t v = std::uint32_t(std::uint8_t(bytes[i])) << 16 |
                          std::uint32_t(std::uint8_t(bytes[i + 1])) << 8 |
                          std::uint8_t(bytes[i + 2]);
        out += alphabet[v >> 18 & 63];
        out += alphabet[v >> 12 & 63];
        out += alphabet[v >> 6 & 63];
        out += alphabet[v & 63];
    }
    std::size_t rest = bytes.size() - i;
    if (rest == 0) return out;
    std::uint32_t v = std::uint32_t(std::uint8_t(bytes[i])) << 16;
    if (rest == 2) v |= std::uint32_t(std::uint8_t(bytes[i + 1])) << 8;
    out += alphabet[v >> 18 & 63];
    out += alphabet[v >> 12 & 63];
    out += rest == 2 ? alphabet[v >> 6 & 63] : '=';
    out += '=';
    return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
    while (!text.empty() && text.back() == '=') text.remove_suffix(1);
    if (text.size() % 4 == 1) return std::nullopt;
    std::string out;
    out.reserve(text.size() * 3 / 4);
    std::uint32_t acc = 0;
    int bits = 0;
    for (char c : text) {
        int v = sextet(c);
        if (v < 0) return std::nullopt;
        acc = (acc << 6) | std::uint32_t(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += char((acc >> bits) & 0xFF);
        }
    }
    return out;
}

sha256_digest hmac_sha256(std::string_view key, std::string_view message) {
    std::string k(key);
    if (k.size() > sha256_block) {
        auto d = sha256(k);
        k.assign(reinterpret_cast<const char*>(d.data()), d.size());
    }
    k.resize(sha256_block, '\0');
    std::string inner(sha256_block, '\0'), outer(sha256_block, '\0');
    for (std::size_t i = 0; i < sha256_block; ++i) {
        inner[i] = char(std::uint8_t(k[i]) ^ 0x36);
        outer[i] = char(std::uint8_t(k[i]) ^ 0x5c);
    }
    inner.append(message);
    auto inner_digest = sha256(inner);
    outer.append(reinterpret_cast<const char*>(inner_digest.data()), inner_digest.size());
    return sha256(outer);
}

std::string webhook_signing_key(std::string_view secret) {
    secret = trim(secret);
    constexpr std::string_view prefix = "whsec_";
    if (secret.substr(0, prefix.size()) != prefix) return std::string(secret);
    auto decoded = base64_decode(secret.substr(prefix.size()));
    if (!decoded) throw std::invalid_argument("a whsec_ secret is not base64 after the prefix");
    return *decoded;
}

std::string webhook_signature(std::string_view key, std::string_view id, std::string_view timestamp,
                              std::string_view body) {
    std::string content;
    content.reserve(id.size() + timestamp.size() + body.size() + 2);
    content.append(id).append(".").append(timestamp).append(".").append(body);
    auto mac = hmac_sha256(key, content);
    return "v1," +
           base64_encode(std::string_view(reinterpret_cast<const char*>(mac.data()), mac.size()));
}

}  // namespace plugmon::agent::alert::notify
