// Shared by the C entry points: the thread-local error message.
#pragma once

#include <string>

namespace fqvit {
namespace capi {

int fail(const std::string& message);  // records the message, returns 1
void clear_error();

}  // namespace capi
}  // namespace fqvit
