# Just enough of nixpkgs' `lib` for our modules' own code to evaluate
# offline (nixpkgs is not available to the tests): options evaluate to
# their declarations, `mkIf` to its marker.
rec {
  mkOption = declaration: declaration;
  mkEnableOption = description: { inherit description; };
  mkIf = condition: content: { _type = "if"; inherit condition content; };
  optional = condition: x: if condition then [ x ] else [ ];
  optionalAttrs = condition: attrs: if condition then attrs else { };
  types = {
    package = "package"; str = "str"; int = "int"; path = "path"; anything = "anything";
    attrsOf = t: "attrsOf"; listOf = t: "listOf"; nullOr = t: "nullOr";
  };
}
