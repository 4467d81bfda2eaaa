# Installs plugmon_sketch into a PostgreSQL server's directories (cmake -P):
#   cmake -DPG_CONFIG=<pg_config> -DSRC_DIR=<this dir> -DBIN_DIR=<build dir> -P install.cmake
# Each file is copied to a temporary name beside its destination and renamed over it, and only
# when its content differs, so a server that has the old library loaded keeps working. Stale JIT
# bitcode from an earlier `make install` is removed (this build has none). Fails, saying which
# directory, when a destination is not writable.
foreach(v PG_CONFIG SRC_DIR BIN_DIR)
  if(NOT ${v})
    message(FATAL_ERROR "install.cmake: set ${v}")
  endif()
endforeach()
execute_process(COMMAND ${PG_CONFIG} --pkglibdir OUTPUT_VARIABLE libdir OUTPUT_STRIP_TRAILING_WHITESPACE
  COMMAND_ERROR_IS_FATAL ANY)
execute_process(COMMAND ${PG_CONFIG} --sharedir OUTPUT_VARIABLE sharedir OUTPUT_STRIP_TRAILING_WHITESPACE
  COMMAND_ERROR_IS_FATAL ANY)

# PLUGMON_SKETCH_OPTIONAL_IF_NOT_ROOT=1 in the environment (the test fixture): a user other than root
# who may not write the directories gets a note instead of a failure (the tests then skip).
execute_process(COMMAND id -u OUTPUT_VARIABLE uid OUTPUT_STRIP_TRAILING_WHITESPACE)
execute_process(COMMAND test -w "${libdir}" -a -w "${sharedir}/extension" RESULT_VARIABLE not_writable)
if(not_writable AND NOT uid STREQUAL "0" AND "$ENV{PLUGMON_SKETCH_OPTIONAL_IF_NOT_ROOT}" STREQUAL "1")
  message(STATUS "plugmon_sketch install: ${libdir} or ${sharedir}/extension is not writable by "
                 "uid ${uid}: not installed (the extension tests will skip)")
  return()
endif()

function(install_one from to_dir)
  get_filename_component(name "${from}" NAME)
  set(to "${to_dir}/${name}")
  if(NOT EXISTS "${from}")
    message(FATAL_ERROR "plugmon_sketch install: ${from} is missing (build plugmon_sketch_extension)")
  endif()
  if(EXISTS "${to}")
    file(SHA256 "${from}" a)
    file(SHA256 "${to}" b)
    if(a STREQUAL b)
      return()
    endif()
  endif()
  set(tmp "${to_dir}/.${name}.plugmon-tmp")
  file(COPY_FILE "${from}" "${tmp}" RESULT rc)
  if(NOT rc STREQUAL "0")
    message(FATAL_ERROR "plugmon_sketch install: cannot write ${to_dir} (${rc}); run as a user "
                        "who may write the PostgreSQL directories (root), or use "
                        "'make -C agent/store/extension install' with sudo")
  endif()
  file(RENAME "${tmp}" "${to}")
  message(STATUS "plugmon_sketch install: ${to}")
endfunction()

install_one("${BIN_DIR}/plugmon_sketch.so" "${libdir}")
install_one("${SRC_DIR}/plugmon_sketch.control" "${sharedir}/extension")
install_one("${SRC_DIR}/plugmon_sketch--1.0.sql" "${sharedir}/extension")
file(REMOVE_RECURSE "${libdir}/bitcode/plugmon_sketch" "${libdir}/bitcode/plugmon_sketch.index.bc")
