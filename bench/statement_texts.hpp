// SQL texts for the statement benchmarks: 200-byte statements of distinct shapes, a 200-byte
// statement rebuilt with a new literal on every call (as string-built SQL is), and 2 KB statements.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace plugmon::bench {

/// A 200-byte SELECT; `variant` names one of its columns, so each variant is its own statement.
inline std::string statement_200(int variant) {
    std::string s = "SELECT i.id, i.number, i.total_cents, i.currency, c.name, c.email, i.col_" +
                    std::to_string(variant) +
                    " FROM invoices i JOIN customers c ON c.id = i.customer_id WHERE "
                    "i.tenant_id = 10000000 AND i.status = 'open' ORDER BY i.due_date LIMIT 50";
    s.resize(200, ' ');
    return s;
}

/// A 2 KB statement: a wide SELECT with many conditions; `variant` as above.
inline std::string statement_2k(int variant) {
    std::string s = "SELECT o.id";
    for (int c = 0; s.size() < 900; ++c) s += ", o.column_" + std::to_string(c);
    s += " FROM orders o JOIN lines l ON l.order_id = o.id WHERE o.variant_" + std::to_string(variant) +
         " = 1";
    for (int c = 0; s.size() < 2000; ++c)
        s += " AND (o.flag_" + std::to_string(c) + " = 'x' OR o.amount_" + std::to_string(c) + " > 25)";
    s.resize(2048, ' ');
    return s;
}

/// statement_200(0) whose tenant literal (8 digits) counts up by one per next(): a new text on
/// every call, in place, at the cost of a decimal increment (one byte written, mostly).
class literal_variants {
public:
    literal_variants() : text_(statement_200(0)), digits_(text_.find("10000000")) {}

    const std::string& next() {
        for (std::size_t i = digits_ + 7;; --i) {  // 10000000 .. 99999999, then around again
            if (text_[i] != '9') {
                ++text_[i];
                break;
            }
            text_[i] = '0';
            if (i == digits_) {
                text_[i] = '1';
                break;
            }
        }
        return text_;
    }

private:
    std::string text_;
    std::size_t digits_;
};

inline std::vector<std::string> rotating(std::string (*make)(int), int count) {
    std::vector<std::string> out;
    for (int i = 0; i < count; ++i) out.push_back(make(i));
    return out;
}

}  // namespace plugmon::bench
