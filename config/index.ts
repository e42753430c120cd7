// Configuration: the OSB catalog and the runtime configuration file, each with its schema and examples,
// validated once at start-up with errors that name the bad field.
export * from './catalog';
export * from './runtime';
export { configPathFromArgs, packageRoot } from './location';
