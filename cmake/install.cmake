# Install rules and the CMake package (find_package(plugmon) -> plugmon::probe, plugmon::alloc).
#
# Components:
#   probe   libplugmon_probe, libplugmon_alloc (opt-in allocation accounting), include/plugmon/*.hpp,
#           lib/cmake/plugmon (what a plugin builds against)
#   agent   plugmon-agent and plugmonctl (when they are built)
#   system  the systemd unit (<prefix>/lib/systemd/system) and the sysusers entry
#           (<prefix>/lib/sysusers.d), always; the example config in <sysconfdir>/plugmon only with
#           PLUGMON_INSTALL_SYSTEM_FILES=ON, because for prefix /usr that is /etc (outside the prefix)
include(CMakePackageConfigHelpers)

option(PLUGMON_INSTALL_SYSTEM_FILES
  "Also install the example config in <sysconfdir>/plugmon (/etc/plugmon for prefix /usr)"
  OFF)

set(PLUGMON_CMAKE_INSTALL_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/plugmon")

install(TARGETS plugmon_probe plugmon_alloc EXPORT plugmonTargets
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT probe NAMELINK_COMPONENT probe
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT probe
  RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT probe
  INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/plugmon"
  DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}" COMPONENT probe
  FILES_MATCHING PATTERN "*.hpp")

install(EXPORT plugmonTargets
  NAMESPACE plugmon::
  FILE plugmonTargets.cmake
  DESTINATION "${PLUGMON_CMAKE_INSTALL_DIR}"
  COMPONENT probe)
configure_package_config_file(
  "${CMAKE_CURRENT_LIST_DIR}/plugmonConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/plugmonConfig.cmake"
  INSTALL_DESTINATION "${PLUGMON_CMAKE_INSTALL_DIR}")
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/plugmonConfigVersion.cmake"
  VERSION "${PROJECT_VERSION}"
  COMPATIBILITY SameMajorVersion)
install(FILES
  "${PROJECT_BINARY_DIR}/plugmonConfig.cmake"
  "${PROJECT_BINARY_DIR}/plugmonConfigVersion.cmake"
  DESTINATION "${PLUGMON_CMAKE_INSTALL_DIR}"
  COMPONENT probe)

# The executables find an installed libplugmon_probe beside them, wherever the prefix is.
foreach(plugmon_exe IN ITEMS plugmon-agent plugmonctl)
  if(TARGET ${plugmon_exe})
    set_target_properties(${plugmon_exe} PROPERTIES
      INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}")
    install(TARGETS ${plugmon_exe}
      RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT agent)
  endif()
endforeach()

# The unit in deploy/ names /usr/local/bin and /etc/plugmon (the default prefix, copied by hand);
# the installed copy names where this install really puts the agent and its config. Both are worked
# out at install time, so `cmake --install BUILD --prefix DIR` gets DIR (the prefix given then).
# The config directory follows GNUInstallDirs: /etc for prefix /usr, else <prefix>/etc. The example
# config always lands as plugmon.toml.example; plugmon.toml only when there is none yet, so
# reinstalling never overwrites an administrator's configuration.
set(plugmon_install_config "")
if(PLUGMON_INSTALL_SYSTEM_FILES)
  set(plugmon_install_config "
  file(INSTALL DESTINATION \"\${plugmon_conf_dir}\" TYPE FILE
    RENAME plugmon.toml.example FILES \"${PROJECT_SOURCE_DIR}/deploy/plugmon.toml\")
  if(NOT EXISTS \"\$ENV{DESTDIR}\${plugmon_conf_dir}/plugmon.toml\")
    file(INSTALL DESTINATION \"\${plugmon_conf_dir}\" TYPE FILE
      FILES \"${PROJECT_SOURCE_DIR}/deploy/plugmon.toml\")
  else()
    message(STATUS \"Keeping existing: \$ENV{DESTDIR}\${plugmon_conf_dir}/plugmon.toml\")
  endif()")
endif()
install(CODE "
  set(plugmon_bin_dir \"${CMAKE_INSTALL_BINDIR}\")
  if(NOT IS_ABSOLUTE \"\${plugmon_bin_dir}\")
    set(plugmon_bin_dir \"\${CMAKE_INSTALL_PREFIX}/\${plugmon_bin_dir}\")
  endif()
  set(plugmon_conf_dir \"${CMAKE_INSTALL_SYSCONFDIR}\")
  if(IS_ABSOLUTE \"\${plugmon_conf_dir}\")
  elseif(CMAKE_INSTALL_PREFIX STREQUAL \"/usr\")
    set(plugmon_conf_dir \"/\${plugmon_conf_dir}\")
  else()
    set(plugmon_conf_dir \"\${CMAKE_INSTALL_PREFIX}/\${plugmon_conf_dir}\")
  endif()
  set(plugmon_conf_dir \"\${plugmon_conf_dir}/plugmon\")
  file(READ \"${PROJECT_SOURCE_DIR}/deploy/plugmon-agent.service\" plugmon_unit)
  string(REPLACE \"/usr/local/bin/plugmon-agent\" \"\${plugmon_bin_dir}/plugmon-agent\"
    plugmon_unit \"\${plugmon_unit}\")
  string(REPLACE \"/etc/plugmon/plugmon.toml\" \"\${plugmon_conf_dir}/plugmon.toml\"
    plugmon_unit \"\${plugmon_unit}\")
  string(MD5 plugmon_key \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}\")  # one file per prefix
  set(plugmon_unit_file \"${PROJECT_BINARY_DIR}/deploy/install/\${plugmon_key}/plugmon-agent.service\")
  file(WRITE \"\${plugmon_unit_file}\" \"\${plugmon_unit}\")
  file(INSTALL DESTINATION \"\${CMAKE_INSTALL_PREFIX}/lib/systemd/system\" TYPE FILE
    FILES \"\${plugmon_unit_file}\")
  ${plugmon_install_config}" COMPONENT system)
install(FILES "${PROJECT_SOURCE_DIR}/deploy/plugmon.sysusers"
  DESTINATION lib/sysusers.d RENAME plugmon.conf COMPONENT system)
