# Just enough of nixpkgs' `lib` for our modules to evaluate offline
# (nixpkgs is not available to the tests: no package registry ships it).
# Option types check values the way the module system does, with its
# messages: an unknown option ("does not exist"), a value of the wrong type
# ("is not of type"), a required option left out ("used but not defined").
# `evalOptions` and `resolve` stand in for evalModules: the first checks
# given option values against declarations and fills in defaults, the
# second flattens mkIf/mkMerge.
let
  inherit (builtins) attrNames concatStringsSep elem filter foldl' head isAttrs isBool isFloat isInt
    isList isPath isString listToAttrs mapAttrs substring toJSON;

  mkType = name: description: check: { inherit name description check; };

  recursiveUpdate = left: right:
    left // mapAttrs
      (name: value:
        if isAttrs value && isAttrs (left.${name} or null) && !(value ? outPath)
        then recursiveUpdate left.${name} value
        else value)
      right;
in
rec {
  mkOption = declaration: declaration // { _type = "option"; };
  mkEnableOption = description: mkOption { type = types.bool; default = false; inherit description; };
  mkIf = condition: content: { _type = "if"; inherit condition content; };
  mkMerge = contents: { _type = "merge"; inherit contents; };
  optional = condition: x: if condition then [ x ] else [ ];
  optionals = condition: xs: if condition then xs else [ ];
  optionalAttrs = condition: attrs: if condition then attrs else { };
  inherit recursiveUpdate;
  filterAttrsRecursive = pred: set:
    listToAttrs (map
      (name: let value = set.${name}; in {
        inherit name;
        value = if isAttrs value then filterAttrsRecursive pred value else value;
      })
      (filter (name: pred name set.${name}) (attrNames set)));

  types = {
    str = mkType "str" "string" isString;
    bool = mkType "bool" "boolean" isBool;
    int = mkType "int" "signed integer" isInt;
    number = mkType "number" "signed integer or floating point number" (v: isInt v || isFloat v);
    path = mkType "path" "path" (v: isPath v || (isString v && substring 0 1 v == "/"));
    # The tests pass store paths as strings.
    package = mkType "package" "package" (v: isString v || (isAttrs v && v ? outPath));
    anything = mkType "anything" "anything" (_: true);
    ints = {
      unsigned = mkType "unsignedInt" "unsigned integer, meaning >=0" (v: isInt v && v >= 0);
      positive = mkType "positiveInt" "positive integer, meaning >0" (v: isInt v && v > 0);
    };
    enum = values: mkType "enum" "one of ${concatStringsSep ", " (map toJSON values)}" (v: elem v values);
    nullOr = elemType: mkType "nullOr" "null or ${elemType.description}" (v: v == null || elemType.check v) // { inherit elemType; };
    listOf = elemType: mkType "listOf" "list of ${elemType.description}" isList // { inherit elemType; };
    attrsOf = elemType: mkType "attrsOf" "attribute set of ${elemType.description}" isAttrs // { inherit elemType; };
    submodule = module: mkType "submodule" "submodule" isAttrs // { inherit module; };
  };

  # The value of option declarations `decls` (nested attribute sets of
  # mkOption results) at `loc` given the definitions in `value`.
  evalOptions = loc: decls: value:
    let unknown = filter (name: !(decls ? ${name})) (attrNames value);
    in
    if !isAttrs value then throw "A definition for option `${loc}' is not of type `submodule'."
    else if unknown != [ ] then throw "The option `${loc}.${head unknown}' does not exist."
    else mapAttrs
      (name: decl:
        let here = "${loc}.${name}"; in
        if (decl._type or null) == "option" then
          if value ? ${name} then checkValue here decl.type value.${name}
          else if decl ? default then decl.default
          else throw "The option `${here}' is used but not defined."
        else evalOptions here decl (value.${name} or { }))
      decls;

  checkValue = loc: type: value:
    let wrong = throw "A definition for option `${loc}' is not of type `${type.description}'. Definition value: ${toJSON value}";
    in
    if !(type.check value) then wrong
    else if type.name == "nullOr" then (if value == null then null else checkValue loc type.elemType value)
    else if type.name == "listOf" then map (checkValue "${loc}.*" type.elemType) value
    else if type.name == "attrsOf" then mapAttrs (name: checkValue "${loc}.${name}" type.elemType) value
    else if type.name == "submodule" then evalOptions loc type.module.options value
    else value;

  # A module's `config` with mkIf and mkMerge applied.
  resolve = value:
    if isAttrs value && (value._type or null) == "if" then (if value.condition then resolve value.content else { })
    else if isAttrs value && (value._type or null) == "merge" then foldl' (acc: part: recursiveUpdate acc (resolve part)) { } value.contents
    else if isAttrs value && !(value ? outPath) then mapAttrs (_: resolve) value
    else value;
}
