# Turns the rule file into a C array so payd needs no file at run time.
#   cmake -DIN=payd.rules -DOUT=rules_builtin.c -P embed_rules.cmake
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT} "/* generated from ${IN}; do not edit */\nconst char pd_waf_builtin_rules[] = {${bytes}0x00};\n")
