// VM name validation as you type: the rule of vm-proto's `validate_name` (vmd stays the
// judge; its error is shown when it refuses).

export const NAME_MAX_LEN = 63;
const RULE = "use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit";
const PATTERN = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

/** "" when `name` is valid, else why not (vmd's wording). */
export function nameError(name) {
  if (name.length === 0) return `VM name is empty: ${RULE}`;
  if (name.length > NAME_MAX_LEN) return `VM name is ${name.length} characters long: ${RULE}`;
  if (!PATTERN.test(name)) return `invalid VM name "${name}": ${RULE}`;
  return "";
}
