// The conformance shape language (clients/conformance/README.md), in JavaScript.

const TYPES = {
  string: (v) => typeof v === 'string',
  number: (v) => typeof v === 'number',
  integer: (v) => Number.isInteger(v),
  boolean: (v) => typeof v === 'boolean',
  object: (v) => v !== null && typeof v === 'object' && !Array.isArray(v),
  array: (v) => Array.isArray(v),
  null: (v) => v === null,
};

const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const show = (v) => JSON.stringify(v);

/** Replace every `{"$ref": "name.path"}` with the saved value it names. */
export function resolve(value, saved) {
  if (Array.isArray(value)) return value.map((v) => resolve(v, saved));
  if (isObj(value)) {
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === '$ref') {
      const [name, ...path] = value.$ref.split('.');
      return path.reduce((o, k) => o[k], saved[name]);
    }
    return Object.fromEntries(keys.map((k) => [k, resolve(value[k], saved)]));
  }
  return value;
}

function ok(shape, actual) {
  try {
    match(shape, actual);
    return true;
  } catch {
    return false;
  }
}

/** Throw unless `actual` matches `shape`; the message names the JSON path. */
export function match(shape, actual, path = '$') {
  const fail = (why) => { throw new Error(`${path}: ${why}`); };
  if (isObj(shape) && Object.keys(shape).length === 1 && Object.keys(shape)[0].startsWith('$')) {
    const [op, arg] = Object.entries(shape)[0];
    switch (op) {
      case '$type': {
        const kinds = Array.isArray(arg) ? arg : [arg];
        if (!kinds.some((k) => TYPES[k](actual))) fail(`expected type ${show(arg)}, got ${show(actual)}`);
        return;
      }
      case '$absent':
        if (actual !== undefined && actual !== null) fail(`expected absent, got ${show(actual)}`);
        return;
      case '$regex':
        if (typeof actual !== 'string' || !new RegExp(arg).test(actual)) fail(`${show(actual)} does not match /${arg}/`);
        return;
      case '$gte':
        if (typeof actual !== 'number' || actual < arg) fail(`expected >= ${arg}, got ${show(actual)}`);
        return;
      case '$oneOf':
        if (!arg.some((s) => ok(s, actual))) fail(`${show(actual)} matches none of ${show(arg)}`);
        return;
      case '$contains':
        if (!Array.isArray(actual)) fail(`expected an array, got ${show(actual)}`);
        for (const s of arg) if (!actual.some((a) => ok(s, a))) fail(`no element matches ${show(s)}`);
        return;
      case '$subsequence': {
        if (!Array.isArray(actual)) fail(`expected an array, got ${show(actual)}`);
        let i = 0;
        for (const s of arg) {
          while (i < actual.length && !ok(s, actual[i])) i += 1;
          if (i === actual.length) fail(`${show(s)} not found in order in ${show(actual)}`);
          i += 1;
        }
        return;
      }
      case '$unordered': {
        if (!Array.isArray(actual) || actual.length !== arg.length) fail(`expected ${arg.length} elements in any order, got ${show(actual)}`);
        const left = [...actual];
        for (const s of arg) {
          const at = left.findIndex((a) => ok(s, a));
          if (at < 0) fail(`no remaining element matches ${show(s)}`);
          left.splice(at, 1);
        }
        return;
      }
      default:
        fail(`unknown shape operator ${op}`);
    }
  }
  if (isObj(shape)) {
    if (!isObj(actual)) fail(`expected an object, got ${show(actual)}`);
    for (const [k, sub] of Object.entries(shape)) {
      if (isObj(sub) && Object.keys(sub).length === 1 && '$absent' in sub) {
        if (actual[k] !== undefined && actual[k] !== null) fail(`.${k} expected absent, got ${show(actual[k])}`);
        continue;
      }
      if (!(k in actual)) fail(`missing key ${show(k)} in ${show(actual)}`);
      match(sub, actual[k], `${path}.${k}`);
    }
    return;
  }
  if (Array.isArray(shape)) {
    if (!Array.isArray(actual) || actual.length !== shape.length) fail(`expected ${shape.length} elements, got ${show(actual)}`);
    shape.forEach((s, i) => match(s, actual[i], `${path}[${i}]`));
    return;
  }
  if (actual !== shape) fail(`expected ${show(shape)}, got ${show(actual)}`);
}
