export const packageName = '@zxbackup/volumes-local';
