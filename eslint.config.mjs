import nx from '@nx/eslint-plugin';

// Dependency direction (DESIGN.md, STYLE.md): apps -> runtime (composition shared by the apps) -> domain (scanners, retention, restore)
// -> core (item-store, transaction-log) -> contract; adapters (volumes-*, ldap-dump)
// -> contract only. Each SDK has one owning layer; LevelDB (classic-level) has two: the core's
// metadata store and the S3 volume's local pack index (a cache of the bucket's index objects).
const ownedSdks = ['minio', 'ldapts', 'level', 'classic-level', 'memory-level', 'yargs', 'imapflow'];
const banAllBut = (...allowed) => ownedSdks.filter((sdk) => !allowed.includes(sdk));

export default [
  ...nx.configs['flat/base'],
  ...nx.configs['flat/typescript'],
  ...nx.configs['flat/javascript'],
  {
    ignores: ['**/dist', '**/out-tsc', '**/node_modules', '**/coverage', '**/*.cjs', 'tools/**/*.mjs'],
  },
  {
    files: ['**/*.ts'],
    rules: {
      '@nx/enforce-module-boundaries': [
        'error',
        {
          enforceBuildableLibDependency: true,
          allow: [],
          depConstraints: [
            { sourceTag: 'type:e2e', onlyDependOnLibsWithTags: ['type:runtime', 'type:domain', 'type:core', 'type:adapter', 'type:contract'], bannedExternalImports: ownedSdks },
            { sourceTag: 'type:app', onlyDependOnLibsWithTags: ['type:runtime', 'type:domain', 'type:core', 'type:adapter', 'type:contract'], bannedExternalImports: banAllBut('yargs', 'imapflow') },
            { sourceTag: 'type:runtime', onlyDependOnLibsWithTags: ['type:domain', 'type:core', 'type:adapter', 'type:contract'], bannedExternalImports: banAllBut('imapflow') },
            { sourceTag: 'type:domain', onlyDependOnLibsWithTags: ['type:core', 'type:contract'], bannedExternalImports: banAllBut('imapflow') },
            { sourceTag: 'type:core', onlyDependOnLibsWithTags: ['type:contract'], bannedExternalImports: banAllBut('level', 'classic-level', 'memory-level') },
            { sourceTag: 'type:adapter', onlyDependOnLibsWithTags: ['type:contract'], bannedExternalImports: banAllBut('minio', 'ldapts', 'classic-level') },
            { sourceTag: 'type:contract', onlyDependOnLibsWithTags: [], bannedExternalImports: ownedSdks },
          ],
        },
      ],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
];
