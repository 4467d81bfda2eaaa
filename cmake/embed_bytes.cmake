# Helpers for the build steps that embed files into C++ (cmake -P scripts include this).

# plugmon_bytes_literal(PATH OUT_LITERAL OUT_SIZE): the file's bytes as the body of a C++ string
# literal ("\xHH..." lines of 24 bytes, each byte escaped, so no escape merges with the next), and
# its size in bytes.
function(plugmon_bytes_literal path out_literal out_size)
  file(READ "${path}" hex HEX)
  string(LENGTH "${hex}" hex_length)
  math(EXPR size "${hex_length} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "\\\\x\\1" escaped "${hex}")
  string(REPEAT "\\\\x[0-9a-f][0-9a-f]" 24 line)
  string(REGEX REPLACE "(${line})" "\\1\n" escaped "${escaped}")
  string(REPLACE "\n" "\"\n    \"" escaped "${escaped}")
  set(${out_literal} "\"${escaped}\"" PARENT_SCOPE)
  set(${out_size} ${size} PARENT_SCOPE)
endfunction()

# plugmon_write_if_changed(OUTPUT TEXT): writes TEXT to OUTPUT unless it already holds it, so an
# unchanged input does not rebuild what depends on the generated file.
function(plugmon_write_if_changed output text)
  file(WRITE "${output}.tmp" "${text}")
  file(COPY_FILE "${output}.tmp" "${output}" ONLY_IF_DIFFERENT)
  file(REMOVE "${output}.tmp")
endfunction()
