export const appName = '@zxbackup/admin-api';
