export const appName = '@zxbackup/cli';
